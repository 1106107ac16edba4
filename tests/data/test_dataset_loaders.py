"""Every dataset loader on a small file written in that dataset's released format."""

import csv
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from research_rl.cli import app
from research_rl.data.formats import DatasetFormatError
from research_rl.data.prepare import collect, prepare_file
from research_rl.questions import read_questions


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def answers(report):
    return {q.id: q.golden_answers for q in report.questions}


def test_musique_jsonl_keeps_aliases_and_skips_unanswerable(tmp_path):
    src = write_jsonl(
        tmp_path / "musique_full_v1.0_dev.jsonl",
        [
            {
                "id": "2hop__1_2",
                "paragraphs": [
                    {"idx": 0, "title": "A", "paragraph_text": "x", "is_supporting": True}
                ],
                "question": "Who founded the label of Sun?",
                "question_decomposition": [{}, {}],
                "answer": "Sam Phillips",
                "answer_aliases": ["Samuel Phillips", "Sam Phillips"],
                "answerable": True,
            },
            {
                "id": "3hop__9",
                "paragraphs": [],
                "question": "Q?",
                "question_decomposition": [],
                "answer": "x",
                "answer_aliases": [],
                "answerable": False,
            },
        ],
    )
    report = prepare_file("musique", "dev", src)
    assert answers(report) == {"2hop__1_2": ["Sam Phillips", "Samuel Phillips"]}
    assert report.questions[0].metadata == {
        "dataset": "musique",
        "split": "dev",
        "hops": 2,
        "supporting_passages": [{"title": "A", "text": "x"}],
    }
    assert report.skipped == {"marked unanswerable": 1}
    assert report.skipped_at == [f"{src}:2 (marked unanswerable)"]


def test_hotpotqa_json_list_and_test_split_without_answers(tmp_path):
    src = tmp_path / "hotpot_dev_distractor_v1.json"
    src.write_text(
        json.dumps(
            [
                {
                    "_id": "5a8b",
                    "answer": "yes",
                    "question": "Were Scott and Ed of the same nationality?",
                    "supporting_facts": [["Scott", 0]],
                    "context": [["Scott", ["Scott is American."]]],
                    "type": "comparison",
                    "level": "hard",
                },
                {"_id": "5a8c", "question": "Test question?", "context": []},
            ]
        )
    )
    report = prepare_file("hotpotqa", "dev", src)
    assert answers(report) == {"5a8b": ["yes"]}
    assert report.questions[0].metadata["type"] == "comparison"
    assert report.skipped == {"no answer": 1} and report.skipped_at == [f"{src}: row 2 (no answer)"]


def test_2wiki_json_with_alias_file(tmp_path):
    src = tmp_path / "dev.json"
    src.write_text(
        json.dumps(
            [
                {
                    "_id": "8813f",
                    "type": "compositional",
                    "question": "Who is the mother of X?",
                    "context": [],
                    "supporting_facts": [],
                    "evidences": [],
                    "answer": "Małgorzata Braunek",
                    "answer_id": "Q271",
                },
                {
                    "_id": "8814f",
                    "type": "comparison",
                    "question": "Which came first?",
                    "context": [],
                    "answer": "Blind Shaft",
                    "answer_id": "Q999",
                },
            ]
        ),
        encoding="utf-8",
    )
    alias_file = write_jsonl(
        tmp_path / "id_aliases.json",
        [
            {
                "Q_id": "Q271",
                "aliases": ["Malgorzata Braunek", "M. Braunek"],
                "demonyms": ["Polish"],
            },
        ],
    )
    report = prepare_file("2wikimultihopqa", "dev", src, alias_file)
    assert answers(report) == {
        "8813f": ["Małgorzata Braunek", "Malgorzata Braunek", "M. Braunek"],
        "8814f": ["Blind Shaft"],
    }
    without = prepare_file("2wikimultihopqa", "dev", src)
    assert answers(without)["8813f"] == ["Małgorzata Braunek"]
    with pytest.raises(DatasetFormatError, match="an alias file only applies to 2wikimultihopqa"):
        prepare_file("hotpotqa", "dev", src, alias_file)


def test_bamboogle_csv(tmp_path):
    src = tmp_path / "bamboogle.csv"
    with src.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["Question", "Answer"])
        w.writerow(
            ["Who was president when the inventor of the\nlightbulb was born?", "James K. Polk"]
        )
        w.writerow(["What is the capital, of the country?", "Paris"])
    report = prepare_file("bamboogle", "test", src)
    assert answers(report) == {"bamboogle-test-1": ["James K. Polk"], "bamboogle-test-2": ["Paris"]}
    assert "lightbulb" in report.questions[0].question


def test_nq_open_jsonl(tmp_path):
    src = write_jsonl(
        tmp_path / "NQ-open.dev.jsonl",
        [
            {
                "question": "when was the last time anyone was on the moon",
                "answer": ["14 December 1972 UTC", "December 1972"],
            },
            {"question": "who wrote he ain't heavy", "answer": []},
            {"question": "a question NQ-open does not have", "answer": ["x"]},
        ],
    )
    report = prepare_file("nq", "dev", src)
    # NQ-open ships no ids: a question of its dev set takes FlashRAG's id for it (the real files'
    # test checks every one), any other its position.
    moon, other = report.questions
    assert moon.id.startswith("test_") and moon.golden_answers == [
        "14 December 1972 UTC",
        "December 1972",
    ]
    assert (other.id, other.golden_answers) == ("nq-dev-3", ["x"])
    assert report.skipped == {"no answer": 1}
    assert "ids from Search-R1's nq_search/test.parquet" in report.summary()
    assert "1 of 2 rows without ids matched by question" in report.summary()


def test_triviaqa_release_json_and_hub_rows(tmp_path):
    src = tmp_path / "unfiltered-web-dev.json"
    src.write_text(
        json.dumps(
            {
                "Data": [
                    {
                        "Question": (
                            "Which Lloyd Webber musical premiered in the US on 10th December 1993?"
                        ),
                        "QuestionId": "tc_33",
                        "Answer": {
                            "Value": "Sunset Boulevard",
                            "Aliases": ["Sunset Blvd", "Sunset Boulevard"],
                            "NormalizedValue": "sunset boulevard",
                        },
                    },
                    {"Question": "Test?", "QuestionId": "tc_34"},
                ],
                "Domain": "Web",
                "Version": 1.0,
            }
        )
    )
    report = prepare_file("triviaqa", "dev", src)
    assert answers(report) == {"tc_33": ["Sunset Boulevard", "Sunset Blvd"]}
    assert report.num_skipped == 1

    hub = collect(
        "triviaqa",
        "dev",
        [
            (
                "hub row 1",
                {
                    "question": "Q?",
                    "question_id": "qw_1",
                    "answer": {
                        "value": "Paris",
                        "aliases": ["City of Light"],
                        "normalized_aliases": [],
                    },
                },
            )
        ],
        "hub",
    )
    assert answers(hub) == {"qw_1": ["Paris", "City of Light"]}


def test_popqa_tsv_with_json_encoded_answers(tmp_path):
    src = tmp_path / "popQA.tsv"
    with src.open("w", newline="") as f:
        w = csv.writer(f, delimiter="\t")
        w.writerow(["id", "subj", "prop", "obj", "s_pop", "question", "possible_answers"])
        w.writerow(
            [
                "4222362",
                "George Rankin",
                "occupation",
                "politician",
                "142",
                "What is George Rankin's occupation?",
                '["politician", "political leader"]',
            ]
        )
    report = prepare_file("popqa", "test", src)
    assert answers(report) == {"4222362": ["politician", "political leader"]}
    assert report.questions[0].metadata["subject_popularity"] == 142


def test_hub_parquet_layout(tmp_path):
    """A Parquet file downloaded from the hub (hotpot_qa rows: 'id', dict-shaped context)."""
    src = tmp_path / "validation-00000-of-00001.parquet"
    pq.write_table(
        pa.Table.from_pylist(
            [
                {
                    "id": "5a8b",
                    "question": "Q1?",
                    "answer": "Chicago",
                    "type": "bridge",
                    "level": "easy",
                    "context": {"title": ["A"], "sentences": [["a."]]},
                },
            ]
        ),
        src,
    )
    assert answers(prepare_file("hotpotqa", "dev", src)) == {"5a8b": ["Chicago"]}


def test_flashrag_jsonl_for_any_dataset(tmp_path):
    src = write_jsonl(
        tmp_path / "test.jsonl",
        [
            {
                "id": "test_0",
                "question": "who got the first nobel prize in physics?",
                "golden_answers": ["Wilhelm Conrad Röntgen"],
                "metadata": {"source": "nq"},
            },
        ],
    )
    report = prepare_file("nq", "test", src)
    assert answers(report) == {"test_0": ["Wilhelm Conrad Röntgen"]}
    assert report.questions[0].metadata == {"source": "nq", "dataset": "nq", "split": "test"}


@pytest.mark.parametrize(
    "rows,message",
    [
        ([{"id": "a", "answer": "x"}], ":1: missing field 'question'"),
        (
            [
                {"id": "a", "question": "q", "answer": "x"},
                {"id": "b", "question": 7, "answer": "x"},
            ],
            ":2: field 'question': expected a string, got int",
        ),
        ([{"id": "a", "question": "q", "answer": ["x"]}], ":1: field 'answer': expected a string"),
        (
            [{"id": "a", "question": "q", "answer": "x", "answer_aliases": "{bad"}],
            ":1: field 'answer_aliases'",
        ),
        (
            [
                {"id": "a", "question": "q", "answer": "x"},
                {"id": "a", "question": "q", "answer": "y"},
            ],
            ":2: duplicate id 'a' (first at",
        ),
    ],
)
def test_malformed_rows_name_file_row_and_field(tmp_path, rows, message):
    src = write_jsonl(tmp_path / "musique.jsonl", rows)
    with pytest.raises(DatasetFormatError) as err:
        prepare_file("musique", "dev", src)
    assert str(err.value).startswith(str(src)) and message in str(err.value)


def test_bamboogle_without_an_answer_column_is_an_error_not_skipped_rows(tmp_path):
    src = tmp_path / "bamboogle.csv"
    src.write_text("Question,Notes\nq,a\n")
    with pytest.raises(DatasetFormatError, match=r"bamboogle.csv:2: missing field 'Answer'"):
        prepare_file("bamboogle", "test", src)


def test_popqa_bad_json_list_is_named(tmp_path):
    src = tmp_path / "popqa.csv"
    src.write_text('id,question,possible_answers\n1,Q?,"[""a"", oops]"\n')
    with pytest.raises(DatasetFormatError, match=r"popqa.csv:2: field 'possible_answers': invalid"):
        prepare_file("popqa", "test", src)


def test_unknown_dataset_and_file_type(tmp_path):
    with pytest.raises(DatasetFormatError, match="unknown dataset 'squad'"):
        collect("squad", "dev", [], "x")
    (tmp_path / "a.xml").write_text("<a/>")
    with pytest.raises(DatasetFormatError, match="unsupported file type '.xml'"):
        prepare_file("nq", "dev", tmp_path / "a.xml")


def test_cli_prepare_reports_skips_and_writes_questions(tmp_path):
    src = write_jsonl(
        tmp_path / "nq.jsonl",
        [
            {"question": "q1", "answer": ["a1"]},
            {"question": "q2", "answer": []},
        ],
    )
    out = tmp_path / "out" / "nq_dev.jsonl"
    result = CliRunner().invoke(
        app,
        [
            "data",
            "prepare",
            "--dataset",
            "nq",
            "--split",
            "dev",
            "--source",
            str(src),
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "skipped 1 rows without an answer (1 no answer)" in result.output
    assert f"{src}:2 (no answer)" in result.output
    qs = read_questions(out)
    assert [(q.id, q.question, q.golden_answers) for q in qs] == [("nq-dev-1", "q1", ["a1"])]


def test_cli_prepare_malformed_is_a_clean_error(tmp_path):
    src = write_jsonl(tmp_path / "nq.jsonl", [{"answer": ["a1"]}])
    result = CliRunner().invoke(
        app,
        [
            "data",
            "prepare",
            "--dataset",
            "nq",
            "--split",
            "dev",
            "--source",
            str(src),
            "--out",
            str(tmp_path / "o.jsonl"),
        ],
    )
    assert result.exit_code == 2
    assert f"error: {src}:1: missing field 'question'" in result.output


class FakeHub:
    """Stands in for ``datasets.load_dataset``: records the call, returns rows or fails."""

    def __init__(self, rows=None, error=None):
        self.rows, self.error, self.calls = rows or [], error, []

    def __call__(self, *args, **kwargs):
        self.calls.append((args, kwargs))
        if self.error:
            raise self.error
        return self.rows


def test_hub_flashrag_source_maps_split_names(monkeypatch):
    import datasets

    from research_rl.data.prepare import prepare_hub

    hub = FakeHub(
        [
            {"id": "dev_0", "question": "q?", "golden_answers": ["a", "b"], "metadata": {}},
            {"id": "dev_1", "question": "q2?", "golden_answers": []},
        ]
    )
    monkeypatch.setattr(datasets, "load_dataset", hub)
    report = prepare_hub("musique", "validation")
    assert hub.calls == [
        (
            ("RUC-NLPIR/FlashRAG_datasets",),
            {"data_files": {"dev": "musique/dev.jsonl"}, "split": "dev"},
        )
    ]
    assert answers(report) == {"dev_0": ["a", "b"]} and report.num_skipped == 1
    assert report.skipped_at == [
        "hf://datasets/RUC-NLPIR/FlashRAG_datasets/musique/dev.jsonl row 2 (no answer)"
    ]


def test_hub_native_source_and_failures(monkeypatch):
    import datasets

    from research_rl.data.prepare import prepare_hub

    hub = FakeHub([{"question": "when?", "answer": ["1972", "December 1972"]}])
    monkeypatch.setattr(datasets, "load_dataset", hub)
    assert answers(prepare_hub("nq", "dev", hub="native")) == {
        "nq-dev-1": ["1972", "December 1972"]
    }
    assert hub.calls[0] == (
        ("google-research-datasets/nq_open", "nq_open"),
        {"split": "validation"},
    )
    with pytest.raises(DatasetFormatError, match="musique has no native hub release"):
        prepare_hub("musique", "dev", hub="native")
    monkeypatch.setattr(datasets, "load_dataset", FakeHub(error=ConnectionError("offline")))
    with pytest.raises(
        DatasetFormatError,
        match=r"nq_open \(nq_open, validation\): could not "
        r"load \(ConnectionError: offline\)",
    ):
        prepare_hub("nq", "dev", hub="native")
