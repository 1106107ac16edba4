"""Contract tests of the vLLM backends against fakes that follow vLLM's documented API."""

from __future__ import annotations

import json
import sys

import httpx
import pytest
from scale_fakes import (
    EOS_ID,
    FakeLLM,
    FakeSamplingParams,
    decode,
    encode_pieces,
    fake_vllm_module,
    logprob_at,
    sample,
)

from research_rl.backends.base import GenerationBackend, GenerationRequest, SamplingParams
from research_rl.backends.vllm import VLLMBackend, VLLMError, VLLMServerBackend

SEARCH = encode_pieces(
    "<think>", "q", "</think>", "<search>", "q", " ", "a", "</sear", "ch>", "x", "y"
)
STRADDLE = encode_pieces("<search>", "b", "</searc", "h>x", "y", "y")
ANSWER = encode_pieces("<answer>", "\\boxed{", "a", "}", "</answer>", "<eos>")
LONG = encode_pieces(*["x"] * 20)
PROMPTS = {1: SEARCH, 2: STRADDLE, 3: ANSWER, 4: LONG}


def script(prompt_ids: list[int]) -> list[int]:
    # The fake model's continuation depends on the prompt's first id.
    return PROMPTS[prompt_ids[0]]


@pytest.fixture
def fake_vllm(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", fake_vllm_module(script))


def requests() -> list[GenerationRequest]:
    return [
        GenerationRequest([1, 7, 7], max_new_tokens=50, stop=["</search>"]),
        GenerationRequest([2], max_new_tokens=50, stop=["</search>"]),
        GenerationRequest([3, 8], max_new_tokens=50, stop=["</search>"]),
        GenerationRequest([4], max_new_tokens=3, stop=["</search>"]),
    ]


def test_engine_receives_token_ids_and_one_sampling_params_per_request(fake_vllm):
    llm = FakeLLM(script)
    backend = VLLMBackend(llm)
    assert isinstance(backend, GenerationBackend)
    backend.generate(requests(), SamplingParams(temperature=0.7, top_p=0.9, top_k=0))
    [(prompts, params)] = llm.calls
    assert prompts == [{"prompt_token_ids": r.prompt_ids} for r in requests()]
    assert [p.max_tokens for p in params] == [50, 50, 50, 3]
    for p in params:
        assert p.stop == ["</search>"]
        assert p.include_stop_str_in_output is True
        assert p.skip_special_tokens is False
        assert p.logprobs == 0
        assert (p.temperature, p.top_p, p.top_k, p.n) == (0.7, 0.9, -1, 1)
        assert p.seed is None


def test_stop_eos_length_and_logprobs_come_back_as_the_protocol_says(fake_vllm):
    out = VLLMBackend(FakeLLM(script)).generate(requests(), SamplingParams())
    search, straddle, answer, long = out

    # Stop string completed by a whole token: ids end with it, nothing sampled after it is kept.
    assert search.finish_reason == "stop" and search.stop_string == "</search>"
    assert search.token_ids == SEARCH[: SEARCH.index(encode_pieces("ch>")[0]) + 1]
    assert decode(search.token_ids).endswith("</search>")
    # Stop string ending inside a token: that token is kept whole (text past the stop string).
    assert straddle.finish_reason == "stop"
    assert straddle.token_ids == STRADDLE[:4]
    assert decode(straddle.token_ids).endswith("</search>x")
    # EOS: finish "eos" with the EOS id included.
    assert answer.finish_reason == "eos" and answer.stop_string is None
    assert answer.token_ids == ANSWER and answer.token_ids[-1] == EOS_ID
    # Budget: exactly max_new_tokens ids.
    assert long.finish_reason == "length" and long.token_ids == LONG[:3]

    for o in out:
        assert o.logprobs == [logprob_at(p, t) for p, t in enumerate(o.token_ids)]


def test_exhausted_budget_is_not_sent_to_the_engine(fake_vllm):
    llm = FakeLLM(script)
    reqs = requests()
    reqs[1].max_new_tokens = 0
    out = VLLMBackend(llm).generate(reqs, SamplingParams())
    [(prompts, _)] = llm.calls
    assert [p["prompt_token_ids"][0] for p in prompts] == [1, 3, 4]
    assert out[1].token_ids == [] and out[1].finish_reason == "length" and out[1].logprobs == []
    assert out[2].finish_reason == "eos"  # order kept around the skipped request
    with pytest.raises(ValueError, match="max_tokens"):
        FakeSamplingParams(max_tokens=0)  # what vLLM would have said


def test_seeded_calls_give_each_request_its_own_seed(fake_vllm):
    llm = FakeLLM(script)
    VLLMBackend(llm, logprobs=False).generate(requests(), SamplingParams(seed=7, temperature=0))
    [(_, params)] = llm.calls
    assert [p.seed for p in params] == [7, 8, 9, 10]
    assert all(p.logprobs is None and p.temperature == 0 for p in params)


def test_without_logprobs_outputs_carry_none(fake_vllm):
    out = VLLMBackend(FakeLLM(script), logprobs=False).generate(requests()[:1], SamplingParams())
    assert out[0].logprobs is None


def test_aborted_request_is_an_error_naming_it(fake_vllm):
    class Aborting(FakeLLM):
        def generate(self, prompts, sampling_params=None, use_tqdm=True):
            results = super().generate(prompts, sampling_params, use_tqdm)
            results[1].outputs[0].finish_reason = "abort"
            return results

    with pytest.raises(VLLMError, match="request 1.*'abort'"):
        VLLMBackend(Aborting(script)).generate(requests(), SamplingParams())


def test_missing_logprob_for_sampled_token_is_an_error(fake_vllm):
    class Wrong(FakeLLM):
        def generate(self, prompts, sampling_params=None, use_tqdm=True):
            results = super().generate(prompts, sampling_params, use_tqdm)
            results[0].outputs[0].logprobs[2] = {
                999: results[0].outputs[0].logprobs[2].popitem()[1]
            }
            return results

    with pytest.raises(VLLMError, match="request 0.*position 2"):
        VLLMBackend(Wrong(script)).generate(requests()[:1], SamplingParams())


def test_from_pretrained_builds_an_engine_with_processed_logprobs(fake_vllm):
    backend = VLLMBackend.from_pretrained("/models/qwen", tensor_parallel_size=2)
    assert backend.llm.init_kwargs == {
        "model": "/models/qwen",
        "tensor_parallel_size": 2,
        "logprobs_mode": "processed_logprobs",
    }


def test_missing_vllm_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # import vllm -> ImportError
    with pytest.raises(ImportError, match="docs/scaling.md"):
        VLLMBackend.from_pretrained("/models/qwen")
    with pytest.raises(ImportError, match="optional GPU dependency"):
        VLLMBackend(FakeLLM(script)).generate(requests(), SamplingParams())


# --- the OpenAI-compatible server (TRL's vllm_mode="server") --------------------------------


class FakeServer:
    """vLLM's /v1/models and /v1/completions with return_token_ids and completion log-probs."""

    def __init__(self) -> None:
        self.payloads: list[dict] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/models":
            return httpx.Response(200, json={"data": [{"id": "policy"}]})
        assert request.url.path == "/v1/completions"
        body = json.loads(request.content)
        self.payloads.append(body)
        fields = {k: body[k] for k in FakeSamplingParams.__dataclass_fields__ if k in body}
        params = FakeSamplingParams(**fields)
        choices = []
        for index, prompt in enumerate(body["prompt"]):
            c = sample(prompt, params, script)
            choices.append(
                {
                    "index": index,
                    "text": c.text,
                    "token_ids": c.token_ids,
                    "finish_reason": c.finish_reason,
                    "stop_reason": c.stop_reason,
                    "logprobs": None
                    if c.logprobs is None
                    else {
                        "tokens": [f"token_id:{t}" for t in c.token_ids],
                        "token_logprobs": [
                            lp[t].logprob for lp, t in zip(c.logprobs, c.token_ids, strict=True)
                        ],
                    },
                }
            )
        return httpx.Response(200, json={"choices": choices})


def server_backend(server: FakeServer) -> VLLMServerBackend:
    client = httpx.Client(transport=httpx.MockTransport(server))
    return VLLMServerBackend("http://trainer-vllm:8000/", client=client)


def test_server_groups_requests_by_budget_and_returns_them_in_order(fake_vllm):
    server = FakeServer()
    out = server_backend(server).generate(requests(), SamplingParams(temperature=1.0))
    assert [len(p["prompt"]) for p in server.payloads] == [3, 1]  # budgets 50, 50, 50 | 3
    first = server.payloads[0]
    assert first["model"] == "policy" and first["max_tokens"] == 50
    assert first["prompt"] == [r.prompt_ids for r in requests()[:3]]
    assert first["stop"] == ["</search>"] and first["include_stop_str_in_output"] is True
    assert first["return_token_ids"] is True and first["logprobs"] == 0
    engine_out = VLLMBackend(FakeLLM(script)).generate(requests(), SamplingParams())
    assert [(o.token_ids, o.finish_reason, o.stop_string, o.logprobs) for o in out] == [
        (o.token_ids, o.finish_reason, o.stop_string, o.logprobs) for o in engine_out
    ]


def test_server_sends_seeded_requests_one_by_one_with_their_own_seed():
    server = FakeServer()
    out = server_backend(server).generate(requests(), SamplingParams(seed=3))
    # sent concurrently, so in any order; each prompt with its own seed
    sent = sorted((p["seed"], p["prompt"]) for p in server.payloads)
    assert sent == [(3 + i, [r.prompt_ids]) for i, r in enumerate(requests())]
    assert [o.finish_reason for o in out] == ["stop", "stop", "eos", "length"]  # in request order


def test_server_http_error_names_the_url():
    client = httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(503, text="busy")))
    backend = VLLMServerBackend("http://h:1", model="m", client=client)
    with pytest.raises(VLLMError, match=r"http://h:1/v1/completions: HTTP 503: busy"):
        backend.generate(requests()[:1], SamplingParams())
