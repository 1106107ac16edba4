"""Fitting a dense index to memory: the planner's arithmetic and choices, and streaming builds
with ``--factory`` / ``--max-ram`` that record recall, memory and QPS in the manifest."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from research_rl.cli import app
from research_rl.retrieval.index import build_index, load_index
from research_rl.retrieval.index_fit import make_index
from research_rl.retrieval.index_plan import (
    BudgetError,
    GiB,
    candidates,
    estimate,
    parse_size,
    plan_for_budget,
)
from research_rl.retrieval.manifest import Manifest

runner = CliRunner()
WIKI18 = 21_015_324  # passages in Search-R1's / FlashRAG's wiki-18


def test_parse_size():
    assert parse_size("16G") == 16 * GiB
    assert parse_size("512M") == parse_size("512MiB") == 512 << 20
    assert parse_size("1.5t") == int(1.5 * (1 << 40))
    assert parse_size("1000") == 1000
    with pytest.raises(ValueError, match="memory size 'sixteen'"):
        parse_size("sixteen")


def test_bytes_per_vector_arithmetic_on_wiki18():
    n, d = WIKI18, 768
    assert estimate("Flat", n, d).index_bytes == n * d * 4  # 64.5 GB
    assert estimate("SQ8", n, d).index_bytes == n * d + 2 * d * 4  # 16.1 GB
    hnsw = estimate("HNSW32", n, d)
    assert hnsw.bytes_per_vector == 4 * d + 32 * 2 * 4 + 16 and hnsw.search_params == {
        "efSearch": 128
    }
    pq = estimate("IVF16384,PQ64", n, d)
    assert pq.bytes_per_vector == 64 + 8 and pq.search_params == {"nprobe": 256}
    assert estimate("OPQ16,IVF256,PQ16", n, d) is None  # passed through without an estimate


@pytest.mark.parametrize(
    "budget,fast,chosen",
    [("128G", False, "Flat"), ("32G", False, "SQ8"), ("16G", False, "IVF16384,PQ384"),
     ("4G", False, "IVF16384,PQ96"), ("72G", True, "HNSW32"), ("32G", True, "HNSW32_SQ8"),
     ("16G", True, "IVF16384,PQ384")],
)  # fmt: skip
def test_budget_picks_the_most_accurate_type_that_fits(budget, fast, chosen):
    plan, why = plan_for_budget(WIKI18, 768, parse_size(budget), fast)
    assert plan.factory == chosen and plan.total_bytes <= parse_size(budget)
    assert why[-1].startswith(f"chose {chosen}: ")
    # Every type tried before it is named with its estimate.
    assert all("exceeds --max-ram" in line for line in why[:-1])


def test_budget_refuses_naming_the_smallest_estimate():
    with pytest.raises(BudgetError, match=r"fits --max-ram 1.0 GiB: the smallest, IVF16384,PQ24"):
        plan_for_budget(WIKI18, 768, GiB)


def test_every_candidate_is_a_valid_factory_string():
    for n, d in ((200, 384), (2_000_000, 128)):
        for plan in candidates(n, d):
            assert make_index(plan.factory, d).d == d


def test_streaming_build_with_factory_records_quality(world, tmp_path):
    m = build_index(
        world.corpus, tmp_path / "idx", kind="dense", factory="HNSW16", quality_sample=50,
        show_progress=False,
    )  # fmt: skip
    assert (m.options["faiss"], m.options["factory"]) == ("factory", "HNSW16")
    assert m.options["search_params"] == {"efSearch": 128}
    q = m.quality
    assert (q.k, q.sample) == (10, 50) and q.recall_at_k > 0.9 and q.qps > 0
    assert q.ram_bytes == (tmp_path / "idx" / "faiss.index").stat().st_size
    assert not (tmp_path / "idx" / "embeddings.f32").exists()  # the memmap is removed
    retriever = load_index(tmp_path / "idx")
    query, target = world.queries[5]
    assert retriever.search([query], 1)[0][0].passage.id == target


def test_streaming_build_of_a_trained_index(world, tmp_path):
    # IVF and PQ are trained on a sample that leaves out the held-out quality queries.
    m = build_index(
        world.corpus, tmp_path / "idx", kind="dense", factory="IVF4,PQ48x4", quality_sample=50,
        show_progress=False,
    )  # fmt: skip
    assert m.options["search_params"]["nprobe"] == 4 and 0 < m.quality.recall_at_k <= 1
    assert len(load_index(tmp_path / "idx").search(["Where was anyone born?"], 3)[0]) == 3


def test_cli_max_ram_chooses_reports_and_refuses(world, tmp_path):
    base = ["index", "build", "--corpus", str(world.corpus), "--kind", "dense",
            "--quality-sample", "20"]  # fmt: skip
    # 1 GiB of process allowance plus 100 kB: too little for Flat or HNSW (1.5 kB a vector),
    # enough for SQ8 (384 B a vector).
    result = runner.invoke(
        app, [*base, "--out", str(tmp_path / "a"), "--max-ram", str(GiB + 10**5)]
    )
    assert result.exit_code == 0, result.output
    assert "Flat: 1.0 GiB" in result.output and "exceeds --max-ram" in result.output
    assert "chose SQ8: " in result.output and "recall@10 " in result.output
    assert Manifest.read(tmp_path / "a").options["factory"] == "SQ8"
    result = runner.invoke(app, [*base, "--out", str(tmp_path / "b"), "--max-ram", "1G"])
    assert result.exit_code == 2
    assert "error: no index of 200 vectors of dimension 384 fits --max-ram 1.0 GiB" in result.output
    result = runner.invoke(app, [*base, "--out", str(tmp_path / "c"), "--factory", "IVF,Nope"])
    assert result.exit_code == 2 and "FAISS factory string 'IVF,Nope' is not valid" in result.output
    result = runner.invoke(
        app, [*base, "--out", str(tmp_path / "d"), "--factory", "SQ8", "--max-ram", "2G"]
    )
    assert result.exit_code == 2 and "give --factory or --max-ram, not both" in result.output
    assert not any((tmp_path / x).exists() for x in "bcd")


def test_fp16_on_a_cpu_is_ignored_not_an_error(world, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: --fp16 is used")
    m = build_index(world.corpus, tmp_path / "idx", kind="dense", fp16=True, show_progress=False)
    assert m.options["fp16"] is True
    assert "--fp16 ignored: no GPU, the encoder runs in float32" in m.options["notes"]
    query, target = world.queries[0]
    assert load_index(tmp_path / "idx").search([query], 1)[0][0].passage.id == target
