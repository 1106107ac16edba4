"""The evaluation runner: predictions on disk, resume after an interruption, tables, the CLI."""

import json

import pytest
import yaml
from typer.testing import CliRunner

from research_rl.backends.scripted import ScriptedBackend
from research_rl.cli import app
from research_rl.config import validate_config
from research_rl.evaluation.config import EvalConfig
from research_rl.evaluation.metrics import answer_metrics, cover_em, summarize
from research_rl.evaluation.runner import Evaluation, PredictionFileError
from research_rl.retrieval import RetrieverConfig, make_retriever

ANSWERS = {  # question -> the scripted model's only turn
    "In which country was Tepu Suno born?": "<think> a </think> <answer> \\boxed{Nokate} </answer>",
    "In which country was Tesu Rivi born?": (
        "<think> b </think> <answer> \\boxed{Miboton} </answer>"
    ),
    "Where was Tepu Suno born?": "<think> c </think> <answer> \\boxed{Suzeton, Nokate} </answer>",
}


class CountingBackend:
    """Scripted answers; records which questions were generated; can fail after some calls."""

    def __init__(self, tokenizer, fail_after: int | None = None):
        self.inner = ScriptedBackend(tokenizer, {q: [[a]] for q, a in ANSWERS.items()})
        self.tokenizer = tokenizer
        self.fail_after = fail_after
        self.prompts: list[str] = []

    def generate(self, requests, sampling):
        if self.fail_after is not None and len(self.prompts) >= self.fail_after:
            raise RuntimeError("server went away")
        self.prompts += [self.tokenizer.decode(r.prompt_ids) for r in requests]
        return self.inner.generate(requests, sampling)


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture
def setup(world, tokenizer, make_config, tmp_path):
    cfg = validate_config(
        make_config(tmp_path / "out", methods=["research", "direct"], chunk_size=1), EvalConfig
    )
    retriever = make_retriever(RetrieverConfig(index=str(world["index"])))

    def evaluation(backend, **changes):
        return Evaluation(
            cfg.model_copy(update=changes), backend, tokenizer, retriever, progress=False
        )

    return evaluation, tmp_path / "out"


def test_an_interrupted_run_resumes_where_it_stopped(setup, tokenizer):
    evaluation, out = setup
    crashing = CountingBackend(tokenizer, fail_after=2)
    with pytest.raises(RuntimeError, match="server went away"):
        evaluation(crashing).run()
    research = out / "predictions" / "tiny__research.jsonl"
    assert [r["id"] for r in read_jsonl(research)] == ["q1", "q2"]  # two chunks were saved

    resumed = CountingBackend(tokenizer)
    table = evaluation(resumed).run()
    asked = [p.split("Question: ")[-1].split("\n")[0] for p in resumed.prompts]
    assert asked == ["Where was Tepu Suno born?"] + list(ANSWERS)  # research q3, then direct
    assert [r["id"] for r in read_jsonl(research)] == ["q1", "q2", "q3"]

    # A finished run asks nothing more and gives the same table.
    idle = CountingBackend(tokenizer)
    assert evaluation(idle).run() == table and idle.prompts == []

    by_method = {row["method"]: row for row in table}
    research_row = by_method["research"]
    assert research_row["n"] == 3
    assert research_row["em"] == pytest.approx(1 / 3)  # Nokate right, Miboton wrong, q3 covered
    assert research_row["cover_em"] == pytest.approx(2 / 3)
    assert research_row["judge"] is None and research_row["searches"] == 0.0


def test_tables_in_markdown_csv_and_json(setup, tokenizer):
    evaluation, out = setup
    evaluation(CountingBackend(tokenizer)).run()
    md = (out / "results.md").read_text()
    # 1 of 3 right: the interval of 3 questions spans every resampled rate, 0 to 100%.
    assert "| tiny | research | 3 | 33.3 [0.0, 100.0] | " in md
    assert "EM (%)" in md and "| direct | 33.3 [0.0, 100.0] |" in md
    assert "| model calls | retriever calls | generated tokens |" in md
    assert "s / question" not in md  # wall time differs between runs: timings.json has it
    csv_lines = (out / "results.csv").read_text().splitlines()
    assert csv_lines[0].startswith("dataset,method,n,seeds,em,em_lo,em_hi,f1,f1_lo,f1_hi,")
    assert csv_lines[0].endswith(",model_calls,retriever_calls,response_tokens")
    assert csv_lines[1].startswith("tiny,research,3,1,0.333")
    results = json.loads((out / "results.json").read_text())
    assert [(r["dataset"], r["method"]) for r in results["results"]] == [
        ("tiny", "research"),
        ("tiny", "direct"),
    ]
    assert set(results) == {"results"}  # no paths: config.yaml and card.json hold them
    row = results["results"][0]
    assert (row["em_lo"], row["em_hi"]) == (0.0, 1.0)
    assert (row["model_calls"], row["retriever_calls"]) == (1.0, 0.0)  # answered at once
    assert (out / "config.yaml").is_file()
    card = json.loads((out / "card.json").read_text())
    assert card["subject"]["methods"] == ["research", "direct"]
    timings = json.loads((out / "timings.json").read_text())
    assert timings["generation"]["tiny__research"]["questions"] == 3
    assert timings["generation"]["tiny__research"]["seconds"] > 0


def test_limit_and_cut_short_last_line(setup, tokenizer):
    evaluation, out = setup
    evaluation(CountingBackend(tokenizer), limit=2).run()
    research = out / "predictions" / "tiny__research.jsonl"
    with research.open("a") as f:
        f.write('{"id": "q3", "prediction"')  # the run was killed mid-write
    backend = CountingBackend(tokenizer)
    table = evaluation(backend).run()
    assert len(backend.prompts) == 2  # q3 for each method; the cut line was dropped
    assert [r["id"] for r in read_jsonl(research)] == ["q1", "q2", "q3"]
    assert [row["n"] for row in table] == [3, 3]


def test_a_malformed_prediction_row_is_named(setup, tokenizer):
    evaluation, out = setup
    (out / "predictions").mkdir(parents=True)
    path = out / "predictions" / "tiny__research.jsonl"
    path.write_text('{"id": "q1"}\nnot json\n{"id": "q2"}\n')
    with pytest.raises(PredictionFileError, match=r"tiny__research.jsonl:2: invalid JSON"):
        evaluation(CountingBackend(tokenizer)).run()


def test_answer_metrics():
    assert cover_em("Paris, France", ["paris"]) == 1.0
    assert cover_em("the 1990s", ["1990"]) == 0.0
    assert cover_em("anything", [""]) == 0.0
    m = answer_metrics(
        "<think> x </think> <answer> The \\boxed{Eiffel Tower} </answer>",
        ["eiffel tower", "Tour Eiffel"],
    )
    assert (m["prediction"], m["em"], m["f1"], m["cover_em"]) == ("Eiffel Tower", 1.0, 1.0, 1.0)
    assert m["prediction_rule"] == "boxed"
    assert answer_metrics("no box here", ["x"])["prediction"] is None
    # research: a closed answer span is needed, and nothing is read from a response cut short
    unclosed = "<think> x </think> <answer> \\boxed{Paris}"
    assert answer_metrics(unclosed, ["Paris"])["prediction"] is None
    assert answer_metrics(unclosed, ["Paris"], rules="strict")["prediction"] == "Paris"
    closed = unclosed + " </answer>"
    assert answer_metrics(closed, ["Paris"], truncated=True)["prediction"] is None
    assert answer_metrics(closed, ["Paris"], rules="strict", truncated=True)["em"] == 1.0
    # plain text, for the baselines
    plain = answer_metrics("The answer is Paris.", ["Paris"], plain_text=True)
    assert (plain["prediction"], plain["prediction_rule"], plain["em"]) == ("Paris", "last_line", 1)
    rows = [
        {
            "em": 1.0,
            "f1": 1.0,
            "cover_em": 1.0,
            "num_searches": 2,
            "response_tokens": 10,
            "valid_format": True,
            "judge": {"correct": True},
        },
        {
            "em": 0.0,
            "f1": 0.5,
            "cover_em": 1.0,
            "num_searches": 0,
            "response_tokens": 20,
            "valid_format": False,
            "judge": {"correct": None},
        },
    ]
    s = summarize(rows)
    assert (s["n"], s["em"], s["f1"], s["judge"], s["judge_failed"]) == (2, 0.5, 0.75, 1.0, 1)
    assert (s["searches"], s["response_tokens"], s["valid_format"]) == (1.0, 15.0, 0.5)


@pytest.mark.parametrize(
    "change,message",
    [
        ({"retriever": None}, "methods 'research' and 'rag' need a 'retriever'"),
        ({"model": {"backend": "openai", "path": "x"}}, "needs 'url'"),
        (
            {"judge": {"url": "http://x/v1", "model": "m", "prompt": "{question}"}},
            "lacks the slot(s) {golden_answers}, {prediction}",
        ),
        ({"methods": ["search"]}, "key 'methods.0'"),
        (
            {"prompts": {"rag_base": "Q: {question}"}},
            "prompts.rag_base lacks the slot(s) {passages}",
        ),
    ],
)
def test_config_errors_are_named(make_config, tmp_path, change, message):
    from research_rl.config import ConfigError

    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        validate_config(make_config(tmp_path, **change), EvalConfig, "eval.yaml")


def test_cli_runs_a_config_and_resumes(make_config, tmp_path):
    raw = make_config(tmp_path / "out", methods=["direct"], limit=2)
    raw["rollout"]["max_response_tokens"] = 8  # a random model: keep it short
    config = tmp_path / "eval.yaml"
    config.write_text(yaml.safe_dump(raw))
    runner = CliRunner()
    first = runner.invoke(app, ["eval", "--config", str(config), "--no-progress"])
    assert first.exit_code == 0, first.output
    assert "| tiny | direct | 2 |" in first.output
    predictions = tmp_path / "out" / "predictions" / "tiny__direct.jsonl"
    before = predictions.read_text()
    assert [r["id"] for r in read_jsonl(predictions)] == ["q1", "q2"]
    second = runner.invoke(app, ["eval", "--config", str(config), "--no-progress"])
    assert second.exit_code == 0 and predictions.read_text() == before

    raw["methods"] = ["nonsense"]
    config.write_text(yaml.safe_dump(raw))
    bad = runner.invoke(app, ["eval", "--config", str(config)])
    assert bad.exit_code == 2 and f"{config}: key 'methods.0'" in bad.output


def test_shipped_configs_validate_and_the_tiny_one_runs(tmp_path):
    from pathlib import Path

    from research_rl.config import load_config

    configs = Path(__file__).resolve().parents[2] / "configs"
    paper = load_config(configs / "eval-qwen2.5-7b-wiki18.yaml", EvalConfig)
    assert paper.model.backend == "openai" and paper.rollout.topk == 5
    # ReSearch's protocol and judge: no search cap, whole passages, a rationale-then-JSON judge
    assert paper.rollout.profile == "research" and paper.rollout.effective().max_searches is None
    assert paper.rollout.effective().max_passage_tokens is None
    assert (paper.judge.preset, paper.judge.max_tokens) == ("research", 512)
    assert [d.name for d in paper.datasets] == [
        "hotpotqa",
        "2wikimultihopqa",
        "musique",
        "bamboogle",
    ]
    quickstart = load_config(configs / "eval-smollm2.yaml", EvalConfig)  # docs/quickstart.md
    assert quickstart.model.path == "models/smollm2-135m-instruct"
    assert quickstart.rollout.template == "instruct" and quickstart.limit == 30
    result = CliRunner().invoke(
        app,
        [
            "eval",
            "--config",
            str(configs / "eval-tiny.yaml"),
            "--output-dir",
            str(tmp_path),
            "--limit",
            "1",
            "--no-progress",
        ],
    )
    assert result.exit_code == 0, result.output
    table = json.loads((tmp_path / "results.json").read_text())["results"]
    assert [(r["method"], r["n"]) for r in table] == [("research", 1), ("direct", 1), ("rag", 1)]
