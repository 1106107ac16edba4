import json
import re

import pytest
from report_synthetic import HOSTILE_PASSAGE, write_eval_dir, write_training_run
from typer.testing import CliRunner

from research_rl.cli import app
from research_rl.report import build_report
from research_rl.report.html import embed_json
from research_rl.report.payload import (
    allocate,
    before_after_tables,
    group_advantages,
    tables_from,
)

_DATA = re.compile(r'<script type="application/json" id="report-data">(.*?)</script>', re.S)


def _data(page: str) -> dict:
    match = _DATA.search(page)
    assert match, "no embedded data block"
    return json.loads(match.group(1))


def test_page_embeds_every_trajectory_segmented(tmp_path):
    run_dir = write_training_run(tmp_path / "run", steps=4, questions=2, val_every=2)
    result = build_report(run_dir, figures=False)
    page = result.html.read_text()
    data = _data(page)
    rows = [
        json.loads(line)
        for f in sorted((run_dir / "rollouts").glob("step_*.jsonl"))
        for line in f.read_text().splitlines()
    ]
    val_rows = [
        json.loads(line)
        for f in sorted((run_dir / "rollouts" / "val").glob("*.jsonl"))
        for line in f.read_text().splitlines()
    ]
    assert len(rows) == 40 and len(val_rows) == 16
    assert result.trajectories == len(data["trajectories"]) == len(rows) + len(val_rows)
    kinds = [data["groups"][t["g"]]["kind"] for t in data["trajectories"]]
    assert kinds == ["step"] * 40 + ["val"] * 16
    for t, row in zip(data["trajectories"], rows + val_rows, strict=True):  # file order is kept
        assert data["groups"][t["g"]]["step"] == row["step"]
        assert (t["q"], t["i"], t["a"]) == (
            row["question"],
            row["sample_index"],
            row["golden_answers"],
        )
        assert (t["r"], t["ns"], t["fin"]) == (
            row["reward"]["value"],
            row["num_searches"],
            row["finish_reason"],
        )
        # The segments hold the whole text but the tags and the blank lines between them.
        contents = "".join(c for _, c, *_ in t["s"])
        stripped = re.sub(r"</?(think|search|result|answer)>", "", row["text"])
        assert contents.replace("\n", "") == stripped.replace("\n", "")
        assert [k for k, *_ in t["s"]].count("r") == row["text"].count("<result>")
    val_keys = {line["key"] for chart in data["charts"] for line in chart["lines"] if line["val"]}
    assert {"val/reward_mean", "val/f1", "val/valid_format"} <= val_keys
    assert [c["title"] for c in data["charts"]] == [
        "Reward (mean)",
        "Answer F1",
        "Valid-format rate",
        "Searches per rollout",
        "Model tokens per rollout",
        "KL to reference",
        "Entropy",
    ]
    assert [b["step"] for b in data["behaviours"]] == [1, 2, 3, 4]


def test_page_references_no_external_resource(tmp_path):
    run_dir = write_training_run(tmp_path / "run", steps=2, questions=1)
    page = build_report(run_dir, figures=False).html.read_text()
    assert HOSTILE_PASSAGE.split()[2] in json.dumps(_data(page))  # the URL is there, as data
    shell = _DATA.sub("", page)
    assert re.findall(r"https?://[^\s\"'<>]+", shell) == ["http://www.w3.org/2000/svg"]  # a name
    for needle in (
        "<link",
        "@import",
        "url(",
        "fetch(",
        "XMLHttpRequest",
        "WebSocket",
        "sendBeacon",
        "EventSource",
        " src=",
    ):
        assert needle not in shell, needle
    # Markup inside passages stays data: the page has exactly its own two scripts.
    assert page.count("<script") == 2 and page.count("</script>") == 2


def test_run_names_and_texts_that_look_like_template_markers_stay_text(tmp_path):
    run_dir = write_training_run(tmp_path / "__DATA__ <b>&", steps=1, questions=1)
    page = build_report(run_dir, figures=False).html.read_text()
    assert "<title>research-rl report: __DATA__ &lt;b&gt;&amp;</title>" in page
    assert _data(page)["title"] == "__DATA__ <b>&"
    assert page.count("/*__JS__*/") == 0 and "use strict" in page


def test_results_the_model_wrote_are_marked_apart_from_inserted_ones(tmp_path):
    rollouts = tmp_path / "rollouts"
    rollouts.mkdir()
    text = "<think>x</think><result>invented</result><search>q</search>\n<result>found</result>"
    (rollouts / "step_1.jsonl").write_text(json.dumps({"question": "q", "text": text}) + "\n")
    (t,) = _data(build_report(tmp_path, figures=False).html.read_text())["trajectories"]
    assert t["s"] == [["t", "x"], ["w", "invented"], ["s", "q"], ["r", "found"]]


def test_embed_json_cannot_close_the_script_element():
    text = embed_json({"t": "</script><!-- <script>"})
    assert "<" not in text and json.loads(text) == {"t": "</script><!-- <script>"}


def test_figures_are_pngs_in_the_run_dir(tmp_path):
    run_dir = write_training_run(tmp_path / "run", steps=3, questions=1)
    result = build_report(run_dir)
    names = sorted(p.name for p in result.figures)
    assert names == sorted(
        [
            "reward.png",
            "f1.png",
            "valid_format.png",
            "searches.png",
            "model_tokens.png",
            "kl.png",
            "entropy.png",
            "behaviours.png",
            "curves.png",
        ]
    )
    for path in result.figures:
        assert path.parent == run_dir / "figures"
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 2000


def test_evaluation_only_dir_has_tables_and_no_figures(tmp_path):
    result = build_report(write_eval_dir(tmp_path / "eval"))
    data = _data(result.html.read_text())
    assert result.figures == [] and data["charts"] == []
    (table,) = data["tables"]  # the results rows, not the config beside them
    assert table["columns"] == ["dataset", "method", "n", "EM", "F1", "searches"]
    assert {(r[0], r[1]) for r in table["rows"]} == {
        (d, m) for d in ("synthetic_hop", "synthetic_bridge") for m in ("naive", "research")
    }
    # Prediction rows show their trajectory and, beside it, the evaluator's scores.
    first = json.loads(
        (tmp_path / "eval" / "predictions" / "synthetic_bridge__naive.jsonl")
        .read_text()
        .splitlines()[0]
    )
    t = data["trajectories"][0]
    assert t["q"] == first["question"] and t["r"] == first["trajectory"]["reward"]["value"]
    assert t["x"] == {
        "prediction": first["prediction"],
        "em": first["em"],
        "f1": first["f1"],
        "cover_em": first["cover_em"],
    }
    assert t["id"] == first["id"]
    judged = next(t for t in data["trajectories"] if "judge correct" in t["x"])
    assert judged["x"]["judge raw"] in ("yes", "no")


def test_tables_from_nested_and_listed_results():
    (flat,) = tables_from([{"dataset": "nq", "em": 0.3}, {"dataset": "hotpotqa", "f1": 0.4}], "t")
    assert flat.columns == ["dataset", "em", "f1"]
    assert flat.rows == [["nq", 0.3, None], ["hotpotqa", None, 0.4]]
    (summary,) = tables_from({"before": {"f1": 0.1}, "after": {"f1": 0.6}, "steps": 40}, "s")
    assert summary.columns == ["name", "steps", "f1"]
    assert summary.rows == [["", 40, None], ["before", None, 0.1], ["after", None, 0.6]]
    assert tables_from({}, "empty") == []


def test_cli_writes_report_and_reports_problems(tmp_path):
    run_dir = write_training_run(tmp_path / "run", steps=2, questions=1)
    with (run_dir / "metrics.jsonl").open("a") as f:
        f.write('{"step": 3, "reward_mean"\n')
    out = tmp_path / "out" / "r.html"
    result = CliRunner().invoke(app, ["report", str(run_dir), "--out", str(out), "--no-figures"])
    assert result.exit_code == 0, result.output
    assert out.is_file() and f"wrote {out} (2 steps, 10 trajectories)" in result.stdout
    assert f"warning: skipped {run_dir / 'metrics.jsonl'}:3: invalid JSON" in result.stderr
    assert not (run_dir / "figures").exists()
    into_dir = CliRunner().invoke(
        app, ["report", str(run_dir), "-o", str(out.parent), "--no-figures"]
    )
    assert into_dir.exit_code == 0 and (out.parent / "report.html").is_file()


def test_cli_errors_name_the_bad_input(tmp_path):
    runner = CliRunner()
    missing = runner.invoke(app, ["report", str(tmp_path / "nope")])
    assert missing.exit_code == 2 and "error:" in missing.stderr and "nope" in missing.stderr
    empty = runner.invoke(app, ["report", str(tmp_path)])
    assert empty.exit_code == 2 and "nothing to report" in empty.stderr


def test_allocate_shares_the_limit_fairly():
    assert allocate([10, 10, 10], None) == [10, 10, 10]
    assert allocate([10, 10, 10], 30) == [10, 10, 10]
    assert allocate([10, 10, 10], 15) == [5, 5, 5]
    assert allocate([2, 50, 30], 40) == [2, 19, 19]  # the small group's leftover goes on
    assert allocate([3, 4], 0) == [0, 0]


def test_capped_report_embeds_fewer_rows_but_counts_behaviours_on_all(tmp_path):
    run_dir = write_training_run(tmp_path / "run", steps=4, questions=2, val_every=10)
    full = _data(build_report(run_dir, out=tmp_path / "full.html", figures=False).html.read_text())
    capped = build_report(run_dir, out=tmp_path / "cap.html", figures=False, max_trajectories=12)
    data = _data(capped.html.read_text())
    assert (capped.trajectories, capped.total_trajectories) == (12, 40)
    assert [(g["count"], g["total"]) for g in data["groups"]] == [(3, 10)] * 4
    assert data["behaviours"] == full["behaviours"] and data["behaviours"][0]["rollouts"] == 10
    result = CliRunner().invoke(
        app, ["report", str(run_dir), "--no-figures", "--max-trajectories", "12"]
    )
    assert "(4 steps, 12 trajectories of 40: raise --max-trajectories" in result.stdout


def test_demo_summary_compares_before_and_after():
    summary = {
        "before": {"one-hop": {"em": 0.1, "f1": 0.2, "n": 10}, "two-hop": {"em": 0.0, "n": 5}},
        "after": {"one-hop": {"em": 0.8, "f1": 0.9, "n": 10}, "two-hop": {"em": 0.4, "n": 5}},
        "steps": 40,
        "seconds": {"grpo": 80.5, "total": 120.0},
    }
    compare, rest = before_after_tables(summary, "summary.json")
    assert compare.columns == [
        "questions",
        "em before",
        "em after",
        "f1 before",
        "f1 after",
        "n before",
        "n after",
    ]
    assert compare.rows == [
        ["one-hop", 0.1, 0.8, 0.2, 0.9, 10, 10],
        ["two-hop", 0.0, 0.4, None, None, 5, 5],
    ]
    assert rest.columns == ["name", "steps", "grpo", "total"]
    assert rest.rows == [["", 40, None, None], ["seconds", None, 80.5, 120.0]]
    (flat,) = before_after_tables({"after": {"f1": 0.5}}, "s")[:1]
    assert flat.columns == ["questions", "f1 after"] and flat.rows == [["all", 0.5]]
    (other,) = before_after_tables({"f1": 0.5}, "s")
    assert (other.title, other.columns, other.rows) == ("Summary (s)", ["f1"], [[0.5]])


def test_group_advantages_match_the_core_grpo_objective():
    import random

    import torch

    from research_rl.grpo import group_advantages as core_advantages

    rng = random.Random(3)
    rewards = [rng.choice([0.0, 0.1, 0.5, 1.0]) for _ in range(4 * 5)]
    rewards[5:10] = [1.0] * 5  # a group with one reward: advantage 0
    rows = [{"question_id": f"q{i // 5}", "reward": {"value": r}} for i, r in enumerate(rewards)]
    ours = group_advantages(rows)
    core = core_advantages(torch.tensor(rewards), group_size=5, scale="group").tolist()
    assert [g[0] for g in ours] == [5] * 20
    assert [g[2] for g in ours] == pytest.approx(core, abs=1e-5)
    assert ours[0][1] == pytest.approx(sum(rewards[:5]) / 5)
    cut = group_advantages(rows[:7])  # a dump that cut the second group short
    assert cut[5:] == [None, None] and all(g is not None for g in cut[:5])
