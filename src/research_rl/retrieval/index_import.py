"""Adopt a FAISS index another project built (Search-R1's and FlashRAG's wiki-18 E5 index: a 64 GB
IndexFlatIP and a 14 GB JSONL corpus) without copying either.

The index directory gets a manifest that points at both files where they are, the passages' line
offsets (so a start does not re-read the corpus) and the encoder settings the file was built with.
With ``factory`` or ``max_ram`` the stored vectors are instead re-indexed into a smaller FAISS
index written into the directory, without re-encoding the corpus.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np

from research_rl.retrieval.dense import (
    FAISS_FILE,
    canonical_encoder,
    choose_factory,
    embedding_dimension,
    gpu_available,
    load_encoder,
    read_faiss,
    write_faiss,
)
from research_rl.retrieval.encoder_presets import resolve_settings
from research_rl.retrieval.index import finish_index_dir, start_index_dir
from research_rl.retrieval.index_fit import fit_index, stored_search_params
from research_rl.retrieval.index_quality import (
    DEFAULT_K,
    DEFAULT_SAMPLE,
    Quality,
    held_out_ids,
    measure_quality,
)
from research_rl.retrieval.manifest import IndexLoadError, Manifest
from research_rl.retrieval.passages import OFFSETS_FILE, scan_corpus
from research_rl.retrieval.vectors import FaissSource


def _norm_note(source: FaissSource, normalize: bool) -> str | None:
    """A warning when the stored vectors' lengths contradict the encoder settings (a DPR index
    imported with a normalising preset, or the reverse): rankings would differ from the file's."""
    ids = held_out_ids(source.num_vectors, 64, seed=1)
    norms = np.linalg.norm(source.take(ids), axis=1)
    unit = bool(np.all(np.abs(norms - 1) < 1e-2))
    if unit == normalize:
        return None
    what = "unit-length" if unit else f"not unit-length ({norms.min():.3g}-{norms.max():.3g})"
    return (
        f"warning: the stored vectors are {what} but queries will "
        f"{'be' if normalize else 'not be'} normalised; check --preset / the encoder"
    )


def import_index(
    faiss_file: str | Path,
    corpus: str | Path,
    out_dir: str | Path,
    encoder: str,
    *,
    preset: str | None = None,
    pooling: str | None = None,
    query_prefix: str | None = None,
    passage_prefix: str | None = None,
    fp16: bool = False,
    factory: str | None = None,
    max_ram: int | None = None,
    fast: bool = False,
    ef_search: int | None = None,
    nprobe: int | None = None,
    quality_sample: int = DEFAULT_SAMPLE,
    overwrite: bool = False,
    show_progress: bool = True,
) -> Manifest:
    """Import ``faiss_file`` (row i = the i-th passage of ``corpus``) into ``out_dir``."""
    faiss_file, corpus, out_dir = Path(faiss_file), Path(corpus), Path(out_dir)
    if factory is not None and max_ram is not None:
        raise ValueError("give --factory or --max-ram, not both")
    if not faiss_file.is_file():
        raise FileNotFoundError(f"{faiss_file}: FAISS file not found")
    if not corpus.is_file():
        raise FileNotFoundError(f"{corpus}: corpus file not found")
    # Mapped, not read: checking a 64 GB flat file must not need 64 GB of memory.
    stored = read_faiss(faiss_file, mmap=True)
    name = canonical_encoder(encoder)
    settings = resolve_settings(name, preset, pooling, query_prefix, passage_prefix)
    dim = embedding_dimension(load_encoder(name, settings.pooling, fp16))
    if stored.d != dim:
        raise IndexLoadError(
            f"{faiss_file}: its vectors have dimension {stored.d}, but encoder {name!r} produces "
            f"{dim}; import it with the encoder that built it"
        )
    tmp = start_index_dir(out_dir, overwrite)
    try:
        offsets, checksum = scan_corpus(corpus, show_progress)
        if stored.ntotal != len(offsets):
            raise IndexLoadError(
                f"{faiss_file}: holds {stored.ntotal:,} vectors, but {corpus} has "
                f"{len(offsets):,} passages (non-blank lines); row i of the index must be "
                "passage i of the corpus it was built from"
            )
        np.save(tmp / OFFSETS_FILE, offsets)
        n = len(offsets)
        source = FaissSource(stored)
        inner_product = stored.metric_type == 0  # faiss.METRIC_INNER_PRODUCT
        notes = [f"{faiss_file}: {type(stored).__name__}, {n:,} vectors of dimension {dim}"]
        if settings.preset is not None:
            notes.append(
                f"encoder preset {settings.preset}: pooling {settings.pooling}, query prefix "
                f"{settings.query_prefix!r}, passage prefix {settings.passage_prefix!r}"
            )
        if fp16 and not gpu_available():
            notes.append("--fp16 ignored: no GPU, the encoder runs in float32")
        if note := _norm_note(source, settings.normalize):
            notes.append(note)
        overrides = {
            k: v for k, v in (("efSearch", ef_search), ("nprobe", nprobe)) if v is not None
        }
        held_out = held_out_ids(n, quality_sample)
        external: dict[str, Any] = {}
        if factory is not None or max_ram is not None:
            chosen, params, why = choose_factory("flat", factory, max_ram, n, dim, 32, fast)
            notes += why
            index = fit_index(
                source,
                chosen,
                inner_product=inner_product,
                held_out=held_out,
                search_params={**params, **overrides},
                show_progress=show_progress,
            )
            write_faiss(index, tmp / FAISS_FILE)
            quality = measure_quality(index, source, held_out, (tmp / FAISS_FILE).stat().st_size)
            faiss_kind = "factory"
        else:
            index, chosen, faiss_kind = stored, type(stored).__name__, "imported"
            if overrides:
                from research_rl.retrieval.index_fit import apply_search_params

                apply_search_params(index, overrides)
            st = faiss_file.stat()
            external = dict(
                faiss_path=str(faiss_file.resolve()),
                faiss_size=st.st_size,
                faiss_mtime_ns=st.st_mtime_ns,
            )
            if type(stored).__name__.startswith("IndexFlat"):
                # Exact by construction; measuring would scan the whole (possibly 64 GB) file.
                quality = Quality(
                    recall_at_k=1.0,
                    k=DEFAULT_K,
                    sample=0,
                    ram_bytes=st.st_size,
                    qps=None,
                    reference="exact index (Flat): recall 1 by construction",
                )
            else:
                quality = measure_quality(index, source, held_out, st.st_size)
        st = corpus.stat()
        manifest = Manifest.new(
            kind="dense",
            encoder=name,
            dimension=dim,
            num_docs=n,
            corpus_checksum=checksum,
            corpus_source=str(corpus.resolve()),
            corpus_path=str(corpus.resolve()),
            corpus_size=st.st_size,
            corpus_mtime_ns=st.st_mtime_ns,
            quality=quality,
            options={
                "faiss": faiss_kind,
                "factory": chosen,
                "imported_from": str(faiss_file.resolve()),
                "metric": "inner_product" if inner_product else "l2",
                # What the file was written with (efSearch kept), unless overridden.
                "search_params": {**stored_search_params(index), **overrides},
                "query_prefix": settings.query_prefix,
                "passage_prefix": settings.passage_prefix,
                "pooling": settings.pooling,
                "normalized": settings.normalize,
                "similarity": "cosine" if settings.normalize else "inner_product",
                "fp16": fp16,
                "preset": settings.preset,
                "notes": notes,
            },
            **external,
        )
        finish_index_dir(tmp, out_dir, manifest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest
