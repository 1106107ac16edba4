"""The HTTP retriever: talks to ``research serve`` (or any server speaking its /retrieve shape)."""

from __future__ import annotations

import time

import httpx

from research_rl.corpus import Passage
from research_rl.retrieval.base import Hit, RetrieverError

# Worth retrying: the server is starting, restarting or overloaded. A 4xx is our request's fault
# and would fail again, so it is raised at once with the server's message.
_RETRY_STATUS = {429, 500, 502, 503, 504}


class HTTPRetriever:
    """Reuses one connection pool; retries transport errors and 5xx with exponential backoff."""

    def __init__(
        self,
        url: str,
        timeout_s: float = 30.0,
        max_retries: int = 3,
        backoff_s: float = 0.5,
        client: httpx.Client | None = None,
    ) -> None:
        url = url.rstrip("/")
        self.url = url if url.endswith("/retrieve") else url + "/retrieve"
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self._client = client or httpx.Client(timeout=timeout_s)

    def search(self, queries: list[str], topk: int) -> list[list[Hit]]:
        # Empty queries have no hits (as in-process); the server would refuse them with a 422.
        asked = [i for i, q in enumerate(queries) if q.strip()]
        out: list[list[Hit]] = [[] for _ in queries]
        if not asked:
            return out
        body = {"queries": [queries[i] for i in asked], "topk": topk, "return_scores": True}
        rows = self._parse(self._post(body), len(asked))
        for i, row in zip(asked, rows, strict=True):
            out[i] = row
        return out

    def _post(self, body: dict) -> object:
        cause = "no attempt made"
        for attempt in range(self.max_retries + 1):
            if attempt:
                time.sleep(self.backoff_s * 2 ** (attempt - 1))
            try:
                resp = self._client.post(self.url, json=body)
            except httpx.TransportError as err:
                cause = f"{type(err).__name__}: {err or 'no detail'}"
                continue
            if resp.status_code in _RETRY_STATUS:
                cause = f"HTTP {resp.status_code}: {_detail(resp)}"
                continue
            if resp.status_code != 200:
                raise RetrieverError(
                    f"retriever at {self.url} rejected the request: HTTP {resp.status_code}: "
                    f"{_detail(resp)}"
                )
            try:
                return resp.json()
            except ValueError:
                raise RetrieverError(f"retriever at {self.url} answered invalid JSON") from None
        raise RetrieverError(
            f"retriever at {self.url} unreachable after {self.max_retries + 1} attempts: {cause}"
        )

    def _parse(self, payload: object, n: int) -> list[list[Hit]]:
        try:
            rows = payload["result"]  # type: ignore[index]
            if len(rows) != n:
                raise ValueError(f"{len(rows)} result lists for {n} queries")
            return [
                [
                    Hit(
                        Passage(str(h["document"]["id"]), str(h["document"]["contents"])),
                        float(h["score"]),
                    )
                    for h in row
                ]
                for row in rows
            ]
        except (KeyError, TypeError, ValueError) as err:
            raise RetrieverError(
                f"retriever at {self.url} answered an unexpected shape: {err}"
            ) from None

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> HTTPRetriever:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _detail(resp: httpx.Response) -> str:
    try:
        data = resp.json()
        if isinstance(data, dict) and "detail" in data:
            return str(data["detail"])
    except ValueError:
        pass
    return resp.text[:200] or resp.reason_phrase
