"""The contamination audit on real released files: overlaps that are there (or planted) are found,
and none between unrelated sets."""

import json

import pytest
from typer.testing import CliRunner

from research_rl.cli import app
from research_rl.data.audit import SCHEMA, audit
from research_rl.data.formats import DatasetFormatError, iter_records
from research_rl.data.passages import context
from research_rl.data.prepare import prepare_file
from research_rl.questions import write_questions


def pair(report, i=0):
    return report["pairs"][i]


def test_nq_open_dev_against_search_r1_nq_test_is_every_question(shared_data):
    """The same 3,610 questions: all found, under ids that line up."""
    report = audit(
        shared_data / "searchr1_nq_search_test.parquet", [shared_data / "NQ-open.dev.jsonl"]
    )
    assert report["schema"] == SCHEMA
    found = pair(report)["same_question"]
    assert found["count"] == 3610 and found["fraction"] == 1.0
    assert len(set(found["eval_ids"])) == 3610
    assert all(x["eval_id"] == x["train_id"] for x in found["examples"])
    assert pair(report)["any"]["count"] == 3610
    assert pair(report)["gold_passages_in_train"]["checked"] is False


@pytest.mark.parametrize(
    "train,evals",
    [
        ("NQ-open.dev.jsonl", ["bamboogle_prerelease_sheet1.csv", "triviaqa_sample.json"]),
        (
            "hipporag_hotpotqa_train.json",
            ["hipporag_musique_train.json", "popqa_readme_excerpt.tsv"],
        ),
        ("hipporag_hotpotqa_train.json", ["hotpot_dev_distractor_v1.first53.json"]),
        ("hipporag_musique_train.json", ["flashrag_musique_dev.first5.jsonl", "NQ-open.dev.jsonl"]),
        ("bamboogle_prerelease_sheet1.csv", ["searchr1_nq_search_test.parquet"]),
    ],
)
def test_unrelated_sets_have_no_overlap(shared_data, train, evals):
    report = audit(shared_data / train, [shared_data / e for e in evals])
    for p in report["pairs"]:
        assert p["any"]["count"] == 0, p["eval"]["path"]
        assert p["same_question"]["count"] == p["same_answer_similar_question"]["count"] == 0


def test_planted_overlaps_in_real_musique_files(shared_data, tmp_path):
    """A training file of real MuSiQue rows with three plants from FlashRAG's MuSiQue dev: one
    question verbatim, one reworded, one row carrying another's gold paragraphs."""
    dev = [row for _, row in iter_records(shared_data / "flashrag_musique_dev.first5.jsonl")]
    train = [row for _, row in iter_records(shared_data / "hipporag_musique_train.json")]
    gold_of_dev2 = [
        {**step["support_paragraph"], "is_supporting": False}
        for step in dev[2]["metadata"]["question_decomposition"]
    ]
    planted = [
        {**train[0], "id": "plant_same", "question": dev[1]["question"].upper()},
        {
            **train[1],
            "id": "plant_reworded",
            "question": "Who was the spouse of the performer of Green?",
            "answer": "Miquette Giraudy",
            "answer_aliases": [],
        },
        {**train[2], "id": "plant_passages", "paragraphs": train[2]["paragraphs"] + gold_of_dev2},
    ]
    src = tmp_path / "musique_train_planted.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in train + planted))
    report = audit(src, [shared_data / "flashrag_musique_dev.first5.jsonl"])
    found = pair(report)
    assert found["same_question"]["eval_ids"] == ["dev_1"]
    assert found["same_question"]["examples"][0]["train_id"] == "plant_same"
    assert found["same_answer_similar_question"]["eval_ids"] == ["dev_0"]
    assert found["same_answer_similar_question"]["examples"][0]["train_id"] == "plant_reworded"
    gold = found["gold_passages_in_train"]
    assert gold["checked"] is True and gold["eval_ids"] == ["dev_2"]
    assert gold["examples"][0]["titles"] == [p["title"] for p in gold_of_dev2]
    assert found["any"]["eval_ids"] == ["dev_1", "dev_0", "dev_2"]
    # A prepared question file is audited the same (its metadata keeps the gold passages).
    prepared = tmp_path / "musique_dev.jsonl"
    write_questions(
        prepare_file("musique", "dev", shared_data / "flashrag_musique_dev.first5.jsonl").questions,
        prepared,
    )
    again = pair(audit(src, [prepared]))
    for key in ("same_question", "same_answer_similar_question", "gold_passages_in_train"):
        assert again[key]["eval_ids"] == found[key]["eval_ids"], key


def test_real_cross_dataset_passage_overlap_is_found_and_real(shared_data):
    """HotpotQA dev ships Wikipedia paragraphs that MuSiQue training questions rest on: every one
    reported is, word for word, in the HotpotQA file."""
    hotpot = shared_data / "hotpot_dev_distractor_v1.first53.json"
    musique = shared_data / "hipporag_musique_train.json"
    report = audit(hotpot, [musique])
    gold = pair(report)["gold_passages_in_train"]
    assert gold["checked"] and gold["count"] >= 1
    shipped = {p for _, row in iter_records(hotpot) for p in context(row, "")}
    questions = {q.id: q for q in prepare_file("musique", "train", musique).questions}
    for item in gold["examples"]:
        passages = questions[item["eval_id"]].metadata["supporting_passages"]
        for title in item["titles"]:
            assert any((p["title"], p["text"]) in shipped for p in passages if p["title"] == title)


def test_cli_writes_the_json_report(shared_data, tmp_path):
    out = tmp_path / "audit" / "nq.json"
    result = CliRunner().invoke(
        app,
        ["data", "audit", "--train", str(shared_data / "flashrag_quickstart_nq_test.jsonl")]
        + ["--eval", str(shared_data / "NQ-open.dev.jsonl")]
        + ["--eval", str(shared_data / "bamboogle_prerelease_sheet1.csv"), "--out", str(out)],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["schema"] == SCHEMA and len(report["pairs"]) == 2
    assert pair(report)["same_question"]["count"] == 17  # FlashRAG's 17 quick-start questions
    assert pair(report, 1)["any"]["count"] == 0
    assert "same question:                 17 (0.5%), e.g. test_" in result.output


def test_a_file_of_no_known_dataset_is_a_clean_error(tmp_path):
    src = tmp_path / "mystery.csv"
    src.write_text("prompt,completion\nq,a\n")
    with pytest.raises(DatasetFormatError, match="cannot tell which dataset this file is from"):
        audit(src, [src])
    result = CliRunner().invoke(app, ["data", "audit", "--train", str(src), "--eval", str(src)])
    assert result.exit_code == 2
    assert result.output.startswith(f"error: {src}:2: cannot tell which dataset")
