"""The closed corpus built from the passages HotpotQA, 2WikiMultiHopQA and MuSiQue ship."""

import json

import pytest
from typer.testing import CliRunner

from research_rl.cli import app
from research_rl.corpus import read_corpus
from research_rl.data.closed_corpus import build_closed_corpus
from research_rl.data.formats import DatasetFormatError
from research_rl.data.passages import join_sentences


def test_hotpotqa_context_deduplicated_across_questions_and_files(tmp_path):
    train = tmp_path / "hotpot_train_v1.1.json"
    dev = tmp_path / "hotpot_dev_distractor_v1.json"
    shared = ["Scott Derrickson", ["Scott Derrickson is an American director.", " He lives in LA."]]
    train.write_text(
        json.dumps(
            [
                {
                    "_id": "1",
                    "question": "q",
                    "answer": "a",
                    "context": [
                        shared,
                        ["Ed Wood", ["Edward Davis Wood Jr. was an American filmmaker."]],
                    ],
                },
                {"_id": "2", "question": "q", "answer": "a", "context": [shared]},
            ]
        )
    )
    dev.write_text(
        json.dumps(
            [
                {
                    "_id": "3",
                    "question": "q",
                    "answer": "a",
                    "context": [shared, ["Ed Wood", ["A different Ed Wood text."]], ["Empty", []]],
                },
            ]
        )
    )
    built = build_closed_corpus("hotpotqa", [train, dev])
    assert [(p.id, p.title, p.text) for p in built.passages] == [
        ("0", "Scott Derrickson", "Scott Derrickson is an American director. He lives in LA."),
        ("1", "Ed Wood", "Edward Davis Wood Jr. was an American filmmaker."),
        ("2", "Ed Wood", "A different Ed Wood text."),
    ]
    assert (built.questions, built.duplicates, built.empty) == (3, 2, 1)


def test_2wiki_sentences_without_leading_spaces_and_hub_layout(tmp_path):
    assert join_sentences(["A is x.", "B is y."]) == "A is x. B is y."
    assert join_sentences(["A is x.", " B is y."]) == "A is x. B is y."
    src = tmp_path / "dev.json"
    src.write_text(
        json.dumps(
            [
                {
                    "_id": "1",
                    "question": "q",
                    "answer": "a",
                    "context": [
                        ["Maheen Khan", ["Maheen Khan is a designer.", "She lives in Lahore."]]
                    ],
                },
                {
                    "id": "2",
                    "question": "q",
                    "answer": "a",  # hub row layout
                    "context": {
                        "title": ["Maheen Khan", "Lahore"],
                        "sentences": [
                            ["Maheen Khan is a designer.", "She lives in Lahore."],
                            ["Lahore is a city."],
                        ],
                    },
                },
            ]
        )
    )
    built = build_closed_corpus("2wikimultihopqa", [src])
    assert [p.contents for p in built.passages] == [
        "Maheen Khan\nMaheen Khan is a designer. She lives in Lahore.",
        "Lahore\nLahore is a city.",
    ]
    assert built.duplicates == 1


def test_musique_paragraphs_through_the_cli(tmp_path):
    src = tmp_path / "musique_ans_v1.0_train.jsonl"
    rows = [
        {
            "id": "2hop__1",
            "question": "q",
            "answer": "a",
            "paragraphs": [
                {
                    "idx": 0,
                    "title": "Sun Records",
                    "paragraph_text": "Sun Records was founded by Sam.",
                    "is_supporting": True,
                },
                {
                    "idx": 1,
                    "title": "Memphis",
                    "paragraph_text": "Memphis is in Tennessee.",
                    "is_supporting": False,
                },
            ],
        },
        {
            "id": "2hop__2",
            "question": "q",
            "answer": "a",
            "paragraphs": [
                {
                    "idx": 0,
                    "title": "Memphis",
                    "paragraph_text": "Memphis is in Tennessee.",
                    "is_supporting": True,
                }
            ],
        },
    ]
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "corpus" / "musique.jsonl"
    result = CliRunner().invoke(
        app, ["data", "corpus", "--dataset", "musique", "--source", str(src), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "2 passages from 2 questions (1 duplicates" in result.output
    assert [(p.id, p.title, p.text) for p in read_corpus(out)] == [
        ("0", "Sun Records", "Sun Records was founded by Sam."),
        ("1", "Memphis", "Memphis is in Tennessee."),
    ]


def test_flashrag_rows_with_context_in_metadata(tmp_path):
    src = tmp_path / "dev.jsonl"
    src.write_text(
        json.dumps(
            {
                "id": "dev_0",
                "question": "q",
                "golden_answers": ["a"],
                "metadata": {"context": {"title": ["T"], "sentences": [["s."]]}},
            }
        )
    )
    assert [p.contents for p in build_closed_corpus("hotpotqa", [src]).passages] == ["T\ns."]


@pytest.mark.parametrize(
    "dataset,row,message",
    [
        ("hotpotqa", {"_id": "1", "context": [["T", "not a list"]]}, "field 'context[0]'"),
        ("hotpotqa", {"_id": "1"}, "this row carries no passages (no 'context' field)"),
        ("musique", {"id": "1", "paragraphs": [{"title": "T"}]}, "field 'paragraphs[0]'"),
    ],
)
def test_malformed_context_is_named(tmp_path, dataset, row, message):
    src = tmp_path / "d.jsonl"
    src.write_text(json.dumps(row) + "\n")
    with pytest.raises(DatasetFormatError) as err:
        build_closed_corpus(dataset, [src])
    assert str(err.value).startswith(f"{src}:1: {message}")


def test_datasets_without_passages_are_refused(tmp_path):
    with pytest.raises(DatasetFormatError, match="nq ships no passages"):
        build_closed_corpus("nq", [])
