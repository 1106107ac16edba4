"""The HTTP client: equivalence with the in-process retriever, retries, and a retriever that is
down."""

from __future__ import annotations

import socket

import httpx
import pytest

from research_rl.retrieval import RetrieverConfig, RetrieverError, make_retriever
from research_rl.retrieval.client import HTTPRetriever
from research_rl.retrieval.server import create_app


@pytest.mark.parametrize("kind", ["bm25", "dense"])
def test_http_and_in_process_are_interchangeable(kind, request, world, live_server):
    local = request.getfixturevalue(kind)
    url = live_server(create_app(local))
    remote = make_retriever(RetrieverConfig(url=url))
    assert isinstance(remote, HTTPRetriever)
    queries = [q for q, _ in world.queries[:8]] + ["zzqx unknown words", "", "born", " \t"]
    try:
        for topk in (1, 5):
            got, want = remote.search(queries, topk), local.search(queries, topk)
            assert [[h.passage for h in row] for row in got] == [
                [h.passage for h in row] for row in want
            ]
            for g_row, w_row in zip(got, want, strict=True):
                assert [h.score for h in g_row] == pytest.approx([h.score for h in w_row])
        assert remote.search([], 3) == [] and remote.search(["  "], 3) == [[]]
    finally:
        remote.close()


def test_rejected_request_is_not_retried_and_names_the_cause(bm25, live_server):
    url = live_server(create_app(bm25))
    remote = HTTPRetriever(url, max_retries=3, backoff_s=5.0)  # a retry would take 5 s
    with (
        remote,
        pytest.raises(
            RetrieverError,
            match=r"rejected the request: HTTP 422: 'topk' must be between 1 and 100, got 101",
        ),
    ):
        remote.search(["born"], 101)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_retriever_down_fails_clearly_after_retries():
    url = f"http://127.0.0.1:{_free_port()}"
    cfg = RetrieverConfig(url=url, max_retries=2, backoff_s=0.01, timeout_s=2)
    with pytest.raises(RetrieverError) as err:
        make_retriever(cfg).search(["anything"], 3)
    message = str(err.value)
    assert f"{url}/retrieve unreachable after 3 attempts" in message
    assert "ConnectError" in message


class _Flaky:
    """A transport answering with the given statuses in turn, counting requests."""

    def __init__(self, *responses: httpx.Response) -> None:
        self.responses = list(responses)
        self.calls = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        return self.responses.pop(0)


def _ok(n_queries: int) -> httpx.Response:
    hit = {"document": {"id": "d1", "contents": "T\nt"}, "score": 1.5}
    return httpx.Response(200, json={"result": [[hit]] * n_queries})


def test_server_errors_are_retried_with_backoff_then_succeed():
    flaky = _Flaky(httpx.Response(503, json={"detail": "warming up"}), httpx.Response(502), _ok(2))
    client = httpx.Client(transport=httpx.MockTransport(flaky))
    remote = HTTPRetriever("http://retriever:9", max_retries=2, backoff_s=0.001, client=client)
    rows = remote.search(["a", "b"], 1)
    assert flaky.calls == 3
    assert [[(h.passage.id, h.passage.title, h.score) for h in row] for row in rows] == [
        [("d1", "T", 1.5)]
    ] * 2


def test_last_server_error_is_reported_after_the_retries():
    flaky = _Flaky(*[httpx.Response(503, json={"detail": "index is loading"})] * 2)
    client = httpx.Client(transport=httpx.MockTransport(flaky))
    remote = HTTPRetriever("http://retriever:9/", max_retries=1, backoff_s=0.001, client=client)
    with pytest.raises(
        RetrieverError,
        match=r"http://retriever:9/retrieve unreachable after 2 attempts: "
        r"HTTP 503: index is loading",
    ):
        remote.search(["a"], 1)
    assert flaky.calls == 2


@pytest.mark.parametrize(
    "response,message",
    [
        (httpx.Response(200, text="<html>"), "invalid JSON"),
        (httpx.Response(200, json={"docs": []}), "unexpected shape"),
        (httpx.Response(200, json={"result": []}), "0 result lists for 1 queries"),
        (httpx.Response(200, json={"result": [[{"id": "x"}]]}), "unexpected shape"),
    ],
)
def test_unexpected_answers_are_clear_errors(response, message):
    client = httpx.Client(transport=httpx.MockTransport(_Flaky(response)))
    remote = HTTPRetriever("http://retriever:9", client=client)
    with pytest.raises(RetrieverError, match=message):
        remote.search(["a"], 1)


def test_client_errors_are_raised_at_once():
    flaky = _Flaky(httpx.Response(422, json={"detail": "'topk' must be between 1 and 50, got 99"}))
    client = httpx.Client(transport=httpx.MockTransport(flaky))
    remote = HTTPRetriever("http://retriever:9", max_retries=5, backoff_s=0.001, client=client)
    with pytest.raises(RetrieverError, match="HTTP 422: 'topk' must be between 1 and 50"):
        remote.search(["a"], 99)
    assert flaky.calls == 1
