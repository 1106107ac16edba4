"""The HTTP retriever: talks to ``research serve`` (or any server speaking its /retrieve shape)."""

from __future__ import annotations

import httpx

from research_rl.corpus import Passage
from research_rl.http_transport import HTTPCallError, call_json
from research_rl.retrieval.base import Hit, RetrieverError


class HTTPRetriever:
    """Reuses one connection pool; retries as ``http_transport`` does (timeouts, transport errors,
    429 and 5xx, with exponential backoff); a 4xx is raised at once with the server's message."""

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
        try:
            return call_json(
                self._client, "POST", self.url, body,
                max_retries=self.max_retries, backoff_s=self.backoff_s,
            )  # fmt: skip
        except HTTPCallError as err:
            if err.exhausted:
                raise RetrieverError(
                    f"retriever at {self.url} unreachable after {err.attempts} attempts: "
                    f"{err.reason}"
                ) from None
            if err.status is not None:
                raise RetrieverError(
                    f"retriever at {self.url} rejected the request: {err.reason}"
                ) from None
            raise RetrieverError(f"retriever at {self.url} answered {err.reason}") from None

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
