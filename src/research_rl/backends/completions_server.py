"""What both ``/v1/completions`` backends share: an OpenAI-compatible server reached through the
one retrying HTTP transport (``research_rl.http_transport``), errors that name the URL, and the
served model read once from the server's model list. :class:`OpenAICompletionsBackend` (text
prompts, evaluation) and :class:`VLLMServerBackend` (token ids, training) build on it.
"""

from __future__ import annotations

from typing import Any

import httpx

from research_rl.http_transport import HTTPCallError, call_json


class CompletionsServer:
    """``base_url`` with or without ``/v1``: ``models_path`` is the model list's path under it."""

    error: type[Exception] = RuntimeError  # what a failed call raises
    models_path = "/v1/models"

    def _connect(
        self,
        base_url: str,
        client: httpx.Client,
        model: str | None,
        max_retries: int,
        backoff_s: float,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.client = client
        self._model = model
        self.max_retries, self.backoff_s = max_retries, backoff_s

    @property
    def model(self) -> str:
        """The served model: as configured, else the first one the server lists."""
        if self._model is None:
            body = self._call("GET", self.models_path)
            try:
                self._model = str(body["data"][0]["id"])
            except (KeyError, IndexError, TypeError):
                raise self.error(
                    f"{self.base_url}{self.models_path}: no model listed ({str(body)[:200]})"
                ) from None
        return self._model

    def _call(self, method: str, path: str, payload: dict[str, Any] | None = None) -> Any:
        url = f"{self.base_url}{path}"
        try:
            return call_json(
                self.client, method, url, payload,
                max_retries=self.max_retries, backoff_s=self.backoff_s,
            )  # fmt: skip
        except HTTPCallError as err:
            raise self.error(f"{url}: {err}") from None

    def close(self) -> None:
        self.client.close()
