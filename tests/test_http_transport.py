"""The one HTTP call with retries that every client uses (research_rl.http_transport)."""

from __future__ import annotations

import httpx
import pytest

from research_rl.http_transport import HTTPCallError, RetryableReply, call_json


def _client(*replies):
    """A client whose server answers ``replies`` in turn (an exception is raised instead)."""
    seen = []

    def handler(request):
        seen.append(request)
        reply = replies[min(len(seen), len(replies)) - 1]
        if isinstance(reply, Exception):
            raise reply
        return reply

    return httpx.Client(transport=httpx.MockTransport(handler), timeout=2.0), seen


def test_transient_failures_are_retried_with_doubling_waits():
    client, seen = _client(
        httpx.ConnectError("refused"),
        httpx.Response(503, json={"detail": "loading"}),
        httpx.Response(429),
        httpx.Response(200, json={"ok": 1}),
    )
    waits = []
    body = call_json(client, "POST", "http://s/x", {}, backoff_s=0.5, sleep=waits.append)
    assert body == {"ok": 1} and len(seen) == 4 and waits == [0.5, 1.0, 2.0]


def test_a_refusal_is_raised_at_once_with_the_servers_detail():
    client, seen = _client(httpx.Response(422, json={"detail": "topk too large"}))
    with pytest.raises(HTTPCallError, match="HTTP 422: topk too large") as err:
        call_json(client, "GET", "http://s/x", max_retries=5, sleep=lambda s: None)
    assert err.value.status == 422 and not err.value.exhausted and len(seen) == 1


def test_exhausted_retries_say_what_the_last_attempt_met():
    client, seen = _client(httpx.ReadTimeout("slow"))
    with pytest.raises(HTTPCallError, match=r"timed out after 2.0s \(after 3 attempts\)") as err:
        call_json(client, "GET", "http://s/x", max_retries=2, sleep=lambda s: None)
    assert err.value.exhausted and err.value.attempts == 3 == len(seen)


def test_a_reply_the_caller_cannot_use_is_asked_again():
    unusable, usable = httpx.Response(200, json={"v": None}), httpx.Response(200, json={"v": 7})
    client, seen = _client(unusable, usable)

    def parse(body):
        if body["v"] is None:
            raise RetryableReply("no verdict")
        return body["v"]

    assert call_json(client, "POST", "http://s/x", parse=parse, sleep=lambda s: None) == 7
    assert len(seen) == 2
