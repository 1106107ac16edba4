"""Protocol cards, recorded retrieval and replay, seeds, presets and `research eval compare`."""

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from research_rl.backends.scripted import ScriptedBackend
from research_rl.cli import app
from research_rl.config import ConfigError, validate_config
from research_rl.evaluation.card import (
    ProtocolMismatchError,
    differences,
    read_card,
    validation_card,
)
from research_rl.evaluation.compare import compare, comparison_markdown
from research_rl.evaluation.config import EvalConfig
from research_rl.evaluation.replay import ReplayMissError, RetrievalStore, StoreError
from research_rl.evaluation.runner import Evaluation
from research_rl.retrieval import RetrieverConfig, make_retriever

REPO = Path(__file__).resolve().parents[2]
TINY_CONFIG = REPO / "configs" / "eval-tiny.yaml"  # limit 4
SCRIPTS = {  # question -> its turns: q1 and q2 search first, q3 answers at once
    "In which country was Tepu Suno born?": [
        "<think> Find the city. </think> <search> Tepu Suno born </search>",
        "<think> Suzeton is in Nokate. </think> <answer> \\boxed{Nokate} </answer>",
    ],
    "In which country was Tesu Rivi born?": [
        "<think> Find it. </think> <search> Tesu Rivi born </search>",
        "<think> Miboton. </think> <answer> \\boxed{Miboton} </answer>",
    ],
    "Where was Tepu Suno born?": ["<think> I know. </think> <answer> \\boxed{Suzeton} </answer>"],
}


def read_jsonl(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


@pytest.fixture
def scripted_run(world, tokenizer, make_config):
    """``scripted_run(out, **config sections)``: a research+rag evaluation on the scripted model
    and the real BM25 index of the tiny world; returns the output directory."""

    def run(out, retriever=True, **sections):
        raw = make_config(out, methods=["research", "rag"], **sections)
        cfg = validate_config(raw, EvalConfig)
        live = make_retriever(RetrieverConfig(index=str(world["index"]))) if retriever else None
        backend = ScriptedBackend(tokenizer, {q: [s] for q, s in SCRIPTS.items()})
        Evaluation(cfg, backend, tokenizer, live, progress=False).run()
        return Path(out)

    return run


def rollout_with(make_config, **changes):
    rollout = make_config(Path("unused"))["rollout"]
    return {**rollout, **changes}


def test_the_card_says_what_produced_the_numbers(scripted_run, make_config, tmp_path, world):
    judge = {"url": "http://127.0.0.1:9/v1", "model": "grader", "max_tokens": 64}
    cfg = validate_config(make_config(tmp_path / "x", judge=judge), EvalConfig)
    out = scripted_run(tmp_path / "run")
    card = read_card(out)
    p = card["protocol"]
    tiny = p["datasets"]["tiny"]
    assert tiny["questions"] == 3 and len(tiny["ids_sha256"]) == 64
    assert (p["corpus"]["passages"], p["retriever"]["kind"], p["topk"]) == (4, "bm25", 2)
    index_manifest = json.loads((world["index"] / "manifest.json").read_text())
    assert p["corpus"]["checksum"] == index_manifest["corpus_checksum"]
    assert p["retriever"]["index_params"]["k1"] == 1.5
    assert p["rollout"]["max_searches"] == 2 and p["rollout"]["profile"] == "research"
    assert p["rollout"]["stop"] == ["</search>"]  # the research profile: </search> and EOS only
    assert "chunk_tokens" not in p["rollout"]  # scheduling only: it changes no result
    assert p["prompts"]["research"] == p["rollout"]["template_sha256"]
    assert set(p["answer_extraction"]) == {"research", "rag"}
    assert p["metrics"]["version"] and p["judge"] is None
    assert card["subject"]["model"]["revision"].startswith("local:")
    assert card["provenance"]["retrieval"]["index"] == str(world["index"])

    from research_rl.evaluation.card import eval_card

    judged = eval_card(cfg, {"tiny": []}, None)["protocol"]["judge"]
    assert judged["model"] == "grader" and judged["max_tokens"] == 64
    assert len(judged["prompt_sha256"]) == 64


def test_runs_that_differ_only_in_topk_are_not_tabulated_together(
    scripted_run, make_config, tmp_path
):
    a = scripted_run(tmp_path / "a")
    b = scripted_run(tmp_path / "b", rollout=rollout_with(make_config, topk=3))
    with pytest.raises(ProtocolMismatchError, match=r"topk \(2 vs 3\)") as err:
        compare([a, b])
    assert "--allow-different" in str(err.value)
    assert [d.key for d in differences([read_card(a), read_card(b)])] == ["topk"]

    runner = CliRunner()
    refused = runner.invoke(app, ["eval", "compare", str(a), str(b)])
    assert refused.exit_code == 2 and "topk (2 vs 3)" in refused.output

    allowed = runner.invoke(app, ["eval", "compare", str(a), str(b), "--allow-different"])
    assert allowed.exit_code == 0, allowed.output
    assert "they differ in:\n- topk: 2 vs 3" in allowed.output
    assert "| tiny | research | A | 3 |" in allowed.output
    assert "| tiny | research | B | 3 |" in allowed.output


def test_same_protocol_compares_and_tests_each_dataset(scripted_run, tmp_path):
    a = scripted_run(tmp_path / "a")
    b = scripted_run(tmp_path / "b")
    comparison = compare([a, b])
    assert comparison.differences == []
    assert [(t.dataset, t.method, t.metric) for t in comparison.tests] == [
        ("tiny", "research", "em"),
        ("tiny", "rag", "em"),
    ]
    identical = comparison.tests[0].result
    assert identical.difference == 0 and identical.p_value == 1.0 and not identical.significant
    text = comparison_markdown(comparison)
    assert "Same protocol card." in text
    assert "A - B = +0.0 points" in text and "not significant at the 5% level" in text

    # Plant a difference: B's research answers all wrong.
    path = b / "predictions" / "tiny__research.jsonl"
    rows = read_jsonl(path)
    for r in rows:
        r["em"] = 0.0
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    planted = compare([a, b]).tests[0]
    assert planted.result.difference == pytest.approx(rows and 2 / 3)  # A right on q1 and q3
    assert planted.result.p_value == pytest.approx(0.5, abs=0.05)  # 2 of 3 questions: too few


def test_a_rerun_in_the_same_directory_under_another_protocol_is_refused(
    scripted_run, make_config, tmp_path
):
    out = scripted_run(tmp_path / "run")
    before = (out / "predictions" / "tiny__research.jsonl").read_text()
    with pytest.raises(ProtocolMismatchError, match=r"another protocol.*topk \(2 vs 5\)"):
        scripted_run(out, rollout=rollout_with(make_config, topk=5))
    assert (out / "predictions" / "tiny__research.jsonl").read_text() == before
    scripted_run(out, limit=2)  # fewer (or more) questions resume the same run


def test_replay_of_a_live_evaluation_is_byte_identical_without_the_index(tmp_path):
    """The tiny trained model of examples/tiny searches its BM25 index; a replay with the index
    path pointing nowhere must write the same predictions and tables, byte for byte."""
    raw = yaml.safe_load(TINY_CONFIG.read_text())
    raw["methods"] = ["research", "rag"]  # the two that search (direct rambles: slow on CPU)
    raw["model"]["path"] = str((TINY_CONFIG.parent / raw["model"]["path"]).resolve())
    raw["rollout"]["template_path"] = str(
        (TINY_CONFIG.parent / raw["rollout"]["template_path"]).resolve()
    )
    raw["datasets"][0]["path"] = str((TINY_CONFIG.parent / raw["datasets"][0]["path"]).resolve())
    raw["retriever"]["index"] = str((TINY_CONFIG.parent / raw["retriever"]["index"]).resolve())
    config = tmp_path / "eval.yaml"
    config.write_text(yaml.safe_dump(raw))

    def research_eval(*args):
        return CliRunner().invoke(app, ["eval", "--config", str(config), "--no-progress", *args])

    live = tmp_path / "live"
    first = research_eval("--output-dir", str(live))
    assert first.exit_code == 0, first.output
    research = read_jsonl(live / "predictions" / "tiny-val__research.jsonl")
    assert sum(r["retriever_calls"] for r in research) >= 3  # the model really searched
    store = RetrievalStore(live / "retrieval")
    assert len(store) >= 2 and store.passages

    raw["retriever"]["index"] = str(tmp_path / "no-such-index")  # the index is switched off
    config.write_text(yaml.safe_dump(raw))
    replayed = tmp_path / "replayed"
    second = research_eval("--output-dir", str(replayed), "--replay", str(live))
    assert second.exit_code == 0, second.output
    files = sorted(p.relative_to(live) for p in (live / "predictions").iterdir())
    assert len(files) == 2
    for rel in [*files, Path("results.json"), Path("results.md"), Path("results.csv")]:
        assert (replayed / rel).read_bytes() == (live / rel).read_bytes(), rel
    assert not (replayed / "retrieval").exists()  # a replay records nothing new
    card = read_card(replayed)
    assert card["provenance"]["replayed_from"] == str(live / "retrieval")
    assert differences([read_card(live), card]) == []  # and so compare accepts them

    # A setting the recording never saw: replay stops on the first unrecorded search.
    raw["rollout"]["topk"] = 3
    config.write_text(yaml.safe_dump(raw))
    missed = research_eval("--output-dir", str(tmp_path / "x"), "--replay", str(live))
    assert missed.exit_code == 2
    assert "is not in the retrieval store" in missed.output and "(topk 3)" in missed.output


def test_a_store_is_shared_between_runs_of_one_retriever_only(scripted_run, tmp_path, world):
    shared = tmp_path / "store"
    scripted_run(tmp_path / "a", retrieval_store=str(shared))
    lines = (shared / "queries.jsonl").read_text()
    scripted_run(tmp_path / "b", retrieval_store=str(shared))
    assert (shared / "queries.jsonl").read_text() == lines  # the same searches, stored once
    assert len(read_jsonl(shared / "queries.jsonl")) == 5  # 2 research searches, 3 rag ones

    other = {"retriever": {"kind": "dense", "encoder": "e5"}, "corpus": {"passages": 4}}
    with pytest.raises(StoreError, match="recorded from another retriever"):
        RetrievalStore(shared, other)
    with pytest.raises(StoreError, match="not a retrieval store"):
        RetrievalStore(tmp_path / "empty")
    store = RetrievalStore(shared)
    with pytest.raises(ReplayMissError, match="'never asked'"):
        store.get("never asked", 2)

    # A last line cut short by a kill is dropped; a damaged line elsewhere is named.
    with (shared / "queries.jsonl").open("a") as f:
        f.write('{"key": "abc", "hi')
    assert len(RetrievalStore(shared)) == 5
    (shared / "queries.jsonl").write_text("not json\n" + lines)
    with pytest.raises(StoreError, match=r"queries.jsonl:1: invalid JSON"):
        RetrievalStore(shared)


def test_replay_without_a_retriever_section(scripted_run, make_config, tmp_path):
    live = scripted_run(tmp_path / "live")
    replayed = scripted_run(tmp_path / "replayed", retriever=False, replay=str(live))
    for name in ("tiny__research.jsonl", "tiny__rag.jsonl"):
        assert (replayed / "predictions" / name).read_bytes() == (
            live / "predictions" / name
        ).read_bytes()
    raw = make_config(tmp_path / "c", replay=str(live))
    del raw["retriever"]
    assert validate_config(raw, EvalConfig).retriever is None


def test_seeds_sample_every_question_n_times(world, tokenizer, make_config, tmp_path):
    raw = make_config(
        tmp_path / "out",
        methods=["direct"],
        sampling={"temperature": 1.0, "seed": 3},
        seeds=3,
    )
    raw["rollout"]["max_response_tokens"] = 6
    from research_rl.evaluation.runner import open_evaluation

    evaluation = open_evaluation(validate_config(raw, EvalConfig), progress=False)
    [row] = evaluation.run()
    files = sorted(p.name for p in (tmp_path / "out" / "predictions").iterdir())
    assert files == ["tiny__direct.jsonl", "tiny__direct__seed1.jsonl", "tiny__direct__seed2.jsonl"]
    texts = [
        [r["trajectory"]["text"] for r in read_jsonl(tmp_path / "out" / "predictions" / f)]
        for f in files
    ]
    assert texts[0] != texts[1] or texts[1] != texts[2]  # sampled: the seeds differ
    assert (row["n"], row["seeds"]) == (3, 3)
    assert row["em_lo"] is not None and "| seeds |" in (tmp_path / "out" / "results.md").read_text()
    assert read_card(tmp_path / "out")["protocol"]["seeds"] == 3

    with pytest.raises(ConfigError, match="need sampling.temperature > 0"):
        validate_config(make_config(tmp_path, seeds=2), EvalConfig, "eval.yaml")


def test_presets_refuse_a_config_that_is_not_the_papers(make_config, tmp_path):
    from research_rl.evaluation.presets import check_preset

    cfg = validate_config(make_config(tmp_path, preset="research", limit=5), EvalConfig)
    with pytest.raises(ConfigError) as err:
        check_preset(cfg)
    assert str(err.value) == (
        "preset 'research' (ReSearch, arXiv 2503.19470) retrieves top-5: rollout.topk is 2; "
        "preset 'research' (ReSearch, arXiv 2503.19470) reports LLM-judge accuracy: add a "
        "'judge' section; preset 'research' (ReSearch, arXiv 2503.19470) evaluates every "
        "question: limit is 5 (drop it or the preset)"
    )
    with pytest.raises(ConfigError, match="retrieves top-3"):
        check_preset(validate_config(make_config(tmp_path, preset="search-r1"), EvalConfig))
    # The CLI refuses before it loads the model.
    config = tmp_path / "eval.yaml"
    config.write_text(yaml.safe_dump(make_config(tmp_path, preset="search-r1")))
    refused = CliRunner().invoke(app, ["eval", "--config", str(config)])
    assert refused.exit_code == 2 and "retrieves top-3: rollout.topk is 2" in refused.output
    assert "got {" not in refused.output

    from research_rl.config import load_config

    paper = load_config(REPO / "configs" / "eval-qwen2.5-7b-wiki18.yaml", EvalConfig)
    assert paper.preset == "research"
    check_preset(paper)
    searchr1 = load_config(REPO / "configs" / "eval-searchr1-protocol.yaml", EvalConfig)
    assert searchr1.preset == "search-r1" and len(searchr1.datasets) == 7
    check_preset(searchr1)


def test_preset_datasets_are_read_from_the_prepared_files(shared_data, tmp_path):
    """The dataset and split of a preset come from what `research data prepare` wrote, here from
    the released HotpotQA dev file."""
    from research_rl.evaluation.card import dataset_section
    from research_rl.evaluation.presets import dataset_deviations
    from research_rl.questions import read_questions

    out = tmp_path / "hotpotqa_dev.jsonl"
    source = shared_data / "hotpot_dev_distractor_v1.first53.json"
    args = ["data", "prepare", "--dataset", "hotpotqa", "--split", "dev", "--source", str(source)]
    prepared = CliRunner().invoke(app, [*args, "--out", str(out)])
    assert prepared.exit_code == 0, prepared.output
    section = dataset_section(read_questions(out))
    assert (section["source"], section["split"], section["questions"]) == ("hotpotqa", "dev", 53)
    wrong = dataset_deviations("research", {"hotpotqa": section})
    assert wrong == [
        "preset 'research' evaluates 2wikimultihopqa dev: no dataset holds it",
        "preset 'research' evaluates musique dev: no dataset holds it",
        "preset 'research' evaluates bamboogle test: no dataset holds it",
    ]
    extra = dict(section, split="train")
    assert "has no hotpotqa train" in dataset_deviations("research", {"h": extra})[-1]


def test_the_card_records_the_audit(scripted_run, tmp_path):
    audit = tmp_path / "audit.json"
    report = {"pairs": [{"train": "musique_train", "eval": "musique_dev", "question_overlap": 2}]}
    audit.write_text(json.dumps(report))
    out = scripted_run(tmp_path / "run", audit=str(audit))
    recorded = read_card(out)["audit"]
    assert recorded["path"] == str(audit) and recorded["report"] == report
    assert len(recorded["sha256"]) == 64
    with pytest.raises(ConfigError, match="audit report not found"):
        scripted_run(tmp_path / "run2", audit=str(tmp_path / "missing.json"))


def test_the_validation_card_of_a_training_config():
    from research_rl.questions import read_questions
    from research_rl.training.run import load_train_config

    cfg = load_train_config(REPO / "configs" / "tiny-cpu.yaml")
    questions = read_questions(cfg.data.validation)
    card = validation_card(cfg, questions)
    p = card["protocol"]
    assert p["datasets"]["validation"]["questions"] == len(questions)
    assert p["topk"] == cfg.rollout.topk and p["sampling"]["temperature"] == 0.0
    assert p["retriever"]["kind"] == "bm25"
    assert card["subject"]["methods"] == ["research"]
