"""The retrieval HTTP service (FastAPI): ``/retrieve``, ``/search``, ``/batch_search``, ``/health``.

Bad input is always a 4xx with a message saying what was wrong, never a 500, and the server keeps
serving after it. See :mod:`research_rl.retrieval.protocol` for the request and response shapes.
"""

from __future__ import annotations

import hashlib
import json
import logging
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from research_rl.retrieval.base import Hit
from research_rl.retrieval.batching import Coalescer
from research_rl.retrieval.config import ServerConfig
from research_rl.retrieval.index import IndexRetriever
from research_rl.retrieval.protocol import BadRequest, Endpoint, parse_request, render

log = logging.getLogger("research_rl.retrieval.server")


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"detail": message}, status_code=status)


def create_app(retriever: IndexRetriever, config: ServerConfig | None = None) -> FastAPI:
    config = config or ServerConfig()
    coalescer = (
        Coalescer(retriever.search, config.max_batch_queries, config.batch_wait_ms / 1000)
        if config.coalesce
        else None
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if coalescer is not None:
            coalescer.start()
        yield
        if coalescer is not None:
            await coalescer.stop()

    app = FastAPI(title="research-rl retrieval", lifespan=lifespan)

    # Routes parse their bodies themselves; these handlers keep FastAPI's own errors (unknown
    # route, wrong method, validation) in the same {"detail": "<message>"} form.
    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = [
            f"'{'.'.join(str(p) for p in e.get('loc', ()) if p != 'body') or 'body'}': "
            f"{e.get('msg')}"
            for e in exc.errors()
        ]
        return _error(422, "invalid request: " + "; ".join(parts))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = str(exc.detail)
        if exc.status_code == 404:
            message = (
                f"no endpoint {request.url.path}; use /retrieve, /search, /batch_search or /health"
            )
        elif exc.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}"
        return _error(exc.status_code, message)

    async def run(queries: list[str], topk: int) -> list[list[Hit]]:
        if not any(q.strip() for q in queries):  # nothing to search (no hits for empty queries)
            return [[] for _ in queries]
        if coalescer is not None:
            return await coalescer.search(queries, topk)
        return await run_in_threadpool(retriever.search, queries, topk)

    async def handle(request: Request, endpoint: Endpoint) -> Any:
        try:
            req = parse_request(await request.body(), endpoint, config)
        except BadRequest as err:
            return _error(err.status, str(err))
        try:
            results = await run(req.queries, req.topk)
        except Exception as err:  # a server fault, not the client's: say so, keep serving
            log.exception("search failed")
            return _error(500, f"search failed: {type(err).__name__}: {err}")
        return JSONResponse(render(endpoint, results, req.return_scores))

    @app.post("/retrieve")
    async def retrieve(request: Request) -> Any:
        """ReSearch / Search-R1 shape: {"queries", "topk", "return_scores"} -> {"result": ...}."""
        return await handle(request, "retrieve")

    @app.post("/search")
    async def search(request: Request) -> Any:
        """FlashRAG shape, one query: {"query", "top_n", "return_score"} -> docs or
        [docs, scores]."""
        return await handle(request, "search")

    @app.post("/batch_search")
    async def batch_search(request: Request) -> Any:
        """FlashRAG shape, many queries: {"query": [...], ...} -> lists or [lists, scores]."""
        return await handle(request, "batch_search")

    # The index's identity, fixed at start: the manifest (with the corpus checksum it records) and
    # a digest of it, so a client or an evaluation card can tell it talks to the same index and
    # corpus; nothing is re-hashed per call.
    manifest = retriever.manifest.model_dump(mode="json")
    manifest_sha256 = hashlib.sha256(
        json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()

    def health() -> dict[str, Any]:
        return {
            "status": "ok",
            "kind": manifest["kind"],
            "num_docs": retriever.num_docs,
            "encoder": manifest["encoder"],
            "corpus_checksum": manifest["corpus_checksum"],
            "manifest_sha256": manifest_sha256,
            "manifest": manifest,
            "coalesce": config.coalesce,
            "batches": coalescer.batches if coalescer is not None else None,
        }

    app.get("/health")(health)
    app.get("/healthz")(health)
    return app
