"""The part both /v1/completions backends share (backends/completions_server.py): the served model
from the server's list, and errors that name the URL, as each backend's own error type."""

from __future__ import annotations

import httpx
import pytest

from research_rl.backends.openai import OpenAICompletionsBackend, ServerBackendError
from research_rl.backends.vllm import VLLMError, VLLMServerBackend


def _client(models: dict, seen: list[str]) -> httpx.Client:
    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        return httpx.Response(200, json=models)

    return httpx.Client(transport=httpx.MockTransport(answer))


def test_the_served_model_is_read_once_from_each_backends_model_list():
    seen: list[str] = []
    listed = {"data": [{"id": "served"}, {"id": "other"}]}
    vllm = VLLMServerBackend("http://h:8000/", client=_client(listed, seen))
    assert vllm.model == "served" and vllm.model == "served"
    text = OpenAICompletionsBackend("http://h:8000/v1", None, client=_client(listed, seen))
    assert text.model == "served"
    assert seen == ["/v1/models", "/v1/models"]  # one lookup each, under the configured URL
    named = VLLMServerBackend("http://h:8000", model="mine", client=_client(listed, seen))
    assert named.model == "mine" and len(seen) == 2


@pytest.mark.parametrize(
    ("make", "error", "url"),
    [
        (
            lambda c: VLLMServerBackend("http://h:8000", client=c),
            VLLMError,
            "http://h:8000/v1/models",
        ),
        (
            lambda c: OpenAICompletionsBackend("http://h:8000/v1", None, client=c),
            ServerBackendError,
            "http://h:8000/v1/models",
        ),
    ],
)
def test_an_empty_model_list_is_an_error_naming_the_url(make, error, url):
    backend = make(_client({"data": []}, []))
    with pytest.raises(error, match=f"{url}: no model listed"):
        _ = backend.model
