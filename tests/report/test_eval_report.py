"""The report's evaluation section: one table per protocol, intervals, cost and the cards."""

import json
import re
from pathlib import Path

import pytest
from report_eval_runs import write_real_eval_dir
from typer.testing import CliRunner

from research_rl.cli import app
from research_rl.evaluation.card import ProtocolMismatchError
from research_rl.report import build_report

TINY_TRAIN_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "tiny-cpu.yaml"
_DATA = re.compile(r'<script type="application/json" id="report-data">(.*?)</script>', re.S)


def page_data(result) -> dict:
    return json.loads(_DATA.search(result.html.read_text()).group(1))


def test_one_evaluation_shows_intervals_cost_card_and_the_cost_plot(tmp_path):
    run = write_real_eval_dir(tmp_path / "eval")
    result = build_report(run)
    data = page_data(result)
    (table,) = data["tables"]
    assert table["columns"][:5] == ["dataset", "method", "n", "seeds", "EM"]
    assert table["columns"][-4:] == [
        "model calls",
        "retriever calls",
        "generated tokens",
        "s / question",
    ]
    results = json.loads((run / "results.json").read_text())["results"]
    research = next(r for r in table["rows"] if r[1] == "research")
    em = next(r for r in results if r["method"] == "research")
    expected = f"{100 * em['em']:.1f} [{100 * em['em_lo']:.1f}, {100 * em['em_hi']:.1f}]"
    assert research[4] == expected
    assert research[-3] == 1.0 and research[-1] > 0  # one search each; a wall time per question
    (chart,) = data["eval_charts"]
    assert chart["x"] == "retriever calls"
    assert {line["key"]: line["steps"] for line in chart["lines"]} == {
        "research": [1.0],
        "rag": [1.0],
    }
    (card,) = data["cards"]
    assert json.loads(card["text"])["protocol"]["topk"] == 2
    assert data["eval_notes"] == []
    assert {p.name for p in result.figures} == {"cost.png", "curves.png"}


def test_evaluations_with_different_cards_are_refused_one_table(tmp_path):
    write_real_eval_dir(tmp_path / "runs" / "top2", topk=2)
    write_real_eval_dir(tmp_path / "runs" / "top3", topk=3)
    with pytest.raises(ProtocolMismatchError, match=r"topk \(2 vs 3\)"):
        build_report(tmp_path / "runs", figures=False)
    refused = CliRunner().invoke(app, ["report", str(tmp_path / "runs"), "--no-figures"])
    assert refused.exit_code == 2 and "topk (2 vs 3)" in refused.output

    allowed = CliRunner().invoke(
        app, ["report", str(tmp_path / "runs"), "--no-figures", "--allow-different"]
    )
    assert allowed.exit_code == 0, allowed.output
    data = json.loads(_DATA.search((tmp_path / "runs" / "report.html").read_text()).group(1))
    (note,) = data["eval_notes"]
    assert "--allow-different" in note and "topk (2 vs 3)" in note
    (table,) = data["tables"]
    assert table["columns"][:3] == ["run", "dataset", "method"]
    assert [(r[0], r[2]) for r in table["rows"]] == [
        ("top2", "research"),
        ("top2", "rag"),
        ("top3", "research"),
        ("top3", "rag"),
    ]
    assert [c["title"] for c in data["cards"]] == [
        "Protocol card (top2)",
        "Protocol card (top3)",
    ]


def test_evaluations_under_one_card_share_a_table(tmp_path):
    write_real_eval_dir(tmp_path / "runs" / "a", limit=3)
    write_real_eval_dir(tmp_path / "runs" / "b", limit=3)
    data = page_data(build_report(tmp_path / "runs", figures=False))
    (table,) = data["tables"]
    assert len(table["rows"]) == 4 and data["eval_notes"] == []
    (chart,) = data["eval_charts"]
    assert [line["key"] for line in chart["lines"]] == [
        "a research",
        "a rag",
        "b research",
        "b rag",
    ]


def test_a_training_runs_validation_card_is_shown(tmp_path):
    from report_synthetic import write_training_run

    from research_rl.evaluation.card import validation_card, write_card
    from research_rl.questions import read_questions
    from research_rl.training.run import load_train_config

    run = write_training_run(tmp_path / "run", steps=2, questions=1, val_every=2)
    cfg = load_train_config(TINY_TRAIN_CONFIG)
    questions = read_questions(cfg.data.validation, limit=cfg.data.max_validation_questions)
    write_card(run / "rollouts" / "val" / "card.json", validation_card(cfg, questions))
    data = page_data(build_report(run, figures=False))
    (card,) = data["cards"]
    assert card["title"] == "Validation protocol card (rollouts/val/card.json)"
    assert json.loads(card["text"])["protocol"]["datasets"]["validation"]["questions"] == 4
