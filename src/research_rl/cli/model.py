"""``research model import``: a GGUF file as a standard Hugging Face model directory."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from research_rl.cli.errors import user_errors

app = typer.Typer(help="Model files: import a GGUF file as a transformers directory.")


@app.command("import")
@user_errors
def import_model(
    source: Annotated[Path, typer.Argument(help="A .gguf file, or a directory holding one.")],
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="Directory to write (default: the cache that --model FILE.gguf uses, "
            "$RESEARCH_RL_CACHE or ~/.cache/research-rl).",
        ),
    ] = None,
) -> None:
    """Dequantise a GGUF model and write safetensors, config, tokenizer (with its chat template)
    and generation config; any --model or model.path then takes the directory (or the .gguf)."""
    from research_rl.models import ModelImportError, cache_dir_for, gguf_file, import_gguf

    gguf = gguf_file(source)
    if gguf is None:
        if not source.exists():
            raise FileNotFoundError(f"{source}: not found")
        raise ModelImportError(f"{source}: not a .gguf file nor a directory holding one")
    target = out or cache_dir_for(gguf)
    start = time.perf_counter()
    import_gguf(gguf, target)
    typer.echo(f"wrote {target} ({time.perf_counter() - start:.0f} s)")
