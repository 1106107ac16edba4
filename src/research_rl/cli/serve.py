"""``research serve``: the retrieval HTTP service."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from research_rl.cli.errors import user_errors


@user_errors
def serve(
    index: Annotated[Path, typer.Option(help="Index directory built by `research index build`.")],
    host: Annotated[
        str, typer.Option(help="Interface to bind (loopback by default).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535)] = 8000,
    config: Annotated[
        Path | None,
        typer.Option(
            help="Server limits and batching (YAML like configs/serve.yaml); defaults if omitted."
        ),
    ] = None,
    corpus: Annotated[
        Path | None,
        typer.Option(help="Refuse to start unless the index was built from this corpus."),
    ] = None,
    encoder: Annotated[
        str | None,
        typer.Option(help="Refuse to start unless the index was built with this encoder."),
    ] = None,
) -> None:
    """Serve an index over HTTP: POST /retrieve, /search, /batch_search; GET /health, /healthz."""
    import uvicorn

    from research_rl.config import load_config
    from research_rl.retrieval.config import ServerConfig
    from research_rl.retrieval.index import load_index
    from research_rl.retrieval.server import create_app

    cfg = load_config(config, ServerConfig) if config is not None else ServerConfig()
    if cfg.num_threads is not None:
        import faiss
        import torch

        torch.set_num_threads(cfg.num_threads)
        faiss.omp_set_num_threads(cfg.num_threads)
    retriever = load_index(index, corpus=corpus, encoder=encoder)
    print(
        f"serving {retriever.kind} index {index} ({retriever.num_docs} passages) on "
        f"http://{host}:{port} (coalescing {'on' if cfg.coalesce else 'off'})",
        flush=True,
    )
    uvicorn.run(create_app(retriever, cfg), host=host, port=port, log_level="warning")
