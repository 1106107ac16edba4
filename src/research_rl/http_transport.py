"""One JSON-over-HTTP call with bounded retries, for every client the project has (the retriever,
the OpenAI-compatible and vLLM servers, the judge).

Worth retrying: a timeout, a connection that failed or dropped, HTTP 429 and 5xx (the server is
starting, restarting or overloaded), and a reply the caller's ``parse`` marks as retryable (a judge
that answered without a verdict). Any other non-200 status is the request's fault and raises at
once. Waits double from ``backoff_s``. Each client turns :class:`HTTPCallError` into its own error
type, so a message names the client's URL and what went wrong.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

import httpx

RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
T = TypeVar("T")


class HTTPCallError(RuntimeError):
    """A call that failed for good: refused (``status`` set, not retried), not JSON, or still
    failing after every attempt (``exhausted``). ``reason`` says what the last attempt met."""

    def __init__(
        self, reason: str, *, status: int | None = None, attempts: int = 1, exhausted: bool = False
    ) -> None:
        super().__init__(f"{reason} (after {attempts} attempts)" if exhausted else reason)
        self.reason, self.status = reason, status
        self.attempts, self.exhausted = attempts, exhausted


class RetryableReply(Exception):
    """Raised by a ``parse`` callback: the reply came back but is not usable; ask again."""


def detail(response: httpx.Response, limit: int = 300) -> str:
    """The server's own explanation: FastAPI's ``detail``, else the start of the body."""
    try:
        data = response.json()
        if isinstance(data, dict) and "detail" in data:
            return str(data["detail"])[:limit]
    except ValueError:
        pass
    return response.text[:limit]


def call_json(
    client: httpx.Client,
    method: str,
    url: str,
    payload: Any = None,
    *,
    max_retries: int = 3,
    backoff_s: float = 0.5,
    parse: Callable[[Any], T] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> T | Any:
    """The JSON reply of ``method url`` (through ``parse`` when given), retried as above."""
    why = "no attempt made"
    for attempt in range(max_retries + 1):
        if attempt:
            sleep(backoff_s * 2 ** (attempt - 1))
        try:
            response = client.request(method, url, json=payload)
        except httpx.TimeoutException:
            seconds = client.timeout.read
            why = f"timed out after {seconds}s" if seconds is not None else "timed out"
            continue
        except httpx.TransportError as err:
            why = f"{type(err).__name__}: {err or 'no detail'}"
            continue
        if response.status_code in RETRY_STATUS:
            why = f"HTTP {response.status_code}: {detail(response, 200)}"
            continue
        if response.status_code != 200:
            raise HTTPCallError(
                f"HTTP {response.status_code}: {detail(response)}",
                status=response.status_code,
                attempts=attempt + 1,
            )
        try:
            body = response.json()
        except ValueError:
            raise HTTPCallError(
                f"invalid JSON: {response.text[:200]!r}", attempts=attempt + 1
            ) from None
        if parse is None:
            return body
        try:
            return parse(body)
        except RetryableReply as err:
            why = str(err)
    raise HTTPCallError(why, attempts=max_retries + 1, exhausted=True)
