"""Every released dataset file in ``../shared/data`` through ``research data prepare`` (and
``research data corpus`` where it carries passages), as its authors publish it."""

import re

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from research_rl.cli import app
from research_rl.data.closed_corpus import build_closed_corpus
from research_rl.data.formats import DatasetFormatError, iter_records
from research_rl.data.id_maps import (
    BUILTIN,
    id_map_from_file,
    id_map_from_pairs,
    read_id_map,
)
from research_rl.data.prepare import prepare_file
from research_rl.data.question_text import question_key
from research_rl.data.spreadsheet_dates import readable_dates
from research_rl.questions import read_questions

# Every file of shared/data: the dataset and split it is prepared as.
RELEASED = {
    "bamboogle_prerelease_sheet1.csv": ("bamboogle", "test"),
    "hotpot_dev_distractor_v1.first53.json": ("hotpotqa", "dev"),
    "hipporag_hotpotqa_train.json": ("hotpotqa", "train"),
    "hipporag_musique_train.json": ("musique", "train"),
    "flashrag_musique_dev.first5.jsonl": ("musique", "dev"),
    "flashrag_quickstart_nq_test.jsonl": ("nq", "test"),
    "NQ-open.dev.jsonl": ("nq", "dev"),
    "searchr1_nq_search_test.parquet": ("nq", "test"),
    "triviaqa_sample.json": ("triviaqa", "dev"),
    "popqa_readme_excerpt.tsv": ("popqa", "test"),
}
CARRY_PASSAGES = {
    "hotpot_dev_distractor_v1.first53.json",
    "hipporag_hotpotqa_train.json",
    "hipporag_musique_train.json",
}


def readme_rows(shared_data):
    """file -> rows, from the README table of shared/data (the count its curator gives)."""
    rows = {}
    for line in (shared_data / "README.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 4 and cells[0].startswith("`"):
            rows[cells[0].strip("`")] = int(cells[3].replace(",", ""))
    return rows


def test_every_released_file_is_covered(shared_data):
    present = {p.name for p in shared_data.iterdir() if p.name != "README.md"}
    assert present == set(RELEASED)
    assert set(readme_rows(shared_data)) == set(RELEASED)


@pytest.mark.parametrize("name", sorted(RELEASED))
def test_every_released_file_prepares_without_losing_a_row(shared_data, name):
    dataset, split = RELEASED[name]
    report = prepare_file(dataset, split, shared_data / name)
    assert len(report.questions) + report.num_skipped == readme_rows(shared_data)[name]
    assert report.num_skipped == 0 and report.warnings == []
    assert len({q.id for q in report.questions}) == len(report.questions)
    for q in report.questions:
        assert q.question.strip() and q.golden_answers and all(a.strip() for a in q.golden_answers)
        assert q.metadata["dataset"] == dataset and q.metadata["split"] == split


def test_every_released_file_through_the_cli(shared_data, tmp_path):
    """The command line, on every file: exit 0, the questions written, never a traceback."""
    for name, (dataset, split) in RELEASED.items():
        out = tmp_path / f"{name}.jsonl"
        args = ["data", "prepare", "--dataset", dataset, "--split", split]
        result = CliRunner().invoke(
            app, [*args, "--source", str(shared_data / name), "--out", str(out)]
        )
        assert result.exit_code == 0, (name, result.output)
        assert len(read_questions(out)) == readme_rows(shared_data)[name]


# --- Bamboogle: the Self-Ask CSV as released ----------------------------------------------------

# The 13 re-typed dates of the CSV and the dates chiayewken/bamboogle (the hub copy, corrected by
# hand, that FlashRAG's Bamboogle comes from) gives for the same rows.
HUB_DATES = {
    "29-May-32": "May 29, 1932",
    "6-Nov-05": "November 6, 1905",
    "22-Apr-94": "April 22, 1994",
    "20-Apr-66": "April 20, 1966",
    "13-Sep-93": "September 13, 1993",
    "31-Jul-58": "July 31, 1958",
    "30-Mar-71": "March 30, 1971",
    "30-Jun-11": "30 June 2011",
    "22-Apr-04": "April 22, 1904",  # Oppenheimer's birth; "5-Jun-04" below is Reagan's death
    "28-Mar-69": "March 28, 1969",
    "5-Jun-04": "June 5, 2004",
    "9-May-05": "May 9, 2005",
    "27-Jul-53": "July 27, 1953",
}


def test_bamboogle_csv_as_released(shared_data):
    src = shared_data / "bamboogle_prerelease_sheet1.csv"
    report = prepare_file("bamboogle", "test", src)
    assert report.notes[0] == f"{src}: not UTF-8 (byte 0x80 at offset 7982); read as Windows-1252"
    # The second answer column is an answer too.
    mother = next(q for q in report.questions if "mother of the father of George" in q.question)
    assert mother.golden_answers == ["Mildred Warner", "Mildred Gale"]
    # Ids: FlashRAG's, test_0 for the first row on.
    assert [q.id for q in report.questions] == [f"test_{i}" for i in range(125)]
    assert report.questions[0].question.startswith("Who was president of the United States")


def test_bamboogle_mangled_dates_get_their_readable_forms(shared_data):
    report = prepare_file("bamboogle", "test", shared_data / "bamboogle_prerelease_sheet1.csv")
    mangled = {
        q.golden_answers[0]: q.golden_answers[1:]
        for q in report.questions
        if re.fullmatch(r"\d{1,2}-[A-Z][a-z]{2}-\d{2}", q.golden_answers[0])
    }
    assert set(mangled) == set(HUB_DATES)  # the 13, no more
    for released, hub in HUB_DATES.items():
        assert hub in mangled[released], released
    # A year after the release's (2022) is read in the 1900s only; one up to it both ways.
    assert mangled["29-May-32"] == ["May 29, 1932", "29 May 1932"]
    assert mangled["5-Jun-04"] == ["June 5, 1904", "5 June 1904", "June 5, 2004", "5 June 2004"]


def test_readable_dates_rule():
    assert readable_dates("29-May-32", 2022) == ["May 29, 1932", "29 May 1932"]
    assert readable_dates("9-may-22", 2022) == [
        "May 9, 1922",
        "9 May 1922",
        "May 9, 2022",
        "9 May 2022",
    ]
    assert readable_dates("29-Feb-00", 2022) == ["February 29, 2000", "29 February 2000"]
    assert readable_dates("31-Feb-20", 2022) == []
    for text in ("1999", "May 29, 1932", "4,884 m", "29-May-1932"):
        assert readable_dates(text, 2022) == []


# --- NQ: the same 3,610 questions under three names ---------------------------------------------


def test_nq_open_dev_ids_line_up_with_search_r1_and_flashrag(shared_data):
    nq_open = prepare_file("nq", "dev", shared_data / "NQ-open.dev.jsonl")
    search_r1 = {
        row["id"]: row
        for row in pq.read_table(shared_data / "searchr1_nq_search_test.parquet").to_pylist()
    }
    assert len(nq_open.questions) == len(search_r1) == 3610
    for q in nq_open.questions:
        theirs = search_r1[q.id]
        assert question_key(q.question) == question_key(theirs["question"]), q.id
        assert q.golden_answers == theirs["golden_answers"]
    assert {q.id for q in nq_open.questions} == set(search_r1)
    # FlashRAG's quick-start NQ test (its own ids) is the same questions under the same ids.
    flashrag = prepare_file("nq", "test", shared_data / "flashrag_quickstart_nq_test.jsonl")
    by_id = {q.id: q for q in nq_open.questions}
    for q in flashrag.questions:
        assert question_key(q.question) == question_key(by_id[q.id].question)


def test_shipped_id_maps_are_the_released_files_ids(shared_data):
    """The maps in the package are exactly what the released files give (no hand-made entry)."""
    nq = id_map_from_file(shared_data / "searchr1_nq_search_test.parquet")
    assert read_id_map(BUILTIN_PATH("nq")).ids == nq.ids and nq.ambiguous == 0
    rows = [r for _, r in iter_records(shared_data / "bamboogle_prerelease_sheet1.csv")]
    bamboogle = id_map_from_pairs(((f"test_{i}", r["Question"]) for i, r in enumerate(rows)), "")
    assert read_id_map(BUILTIN_PATH("bamboogle")).ids == bamboogle.ids


def BUILTIN_PATH(dataset):
    from research_rl.data import id_maps

    return id_maps._SHIPPED / BUILTIN[dataset][0]


def test_ids_from_a_flashrag_file_for_every_row(shared_data, tmp_path):
    """--ids-from: the release's own ids give way to the reference's, and are kept."""
    ref = tmp_path / "test.jsonl"
    ref.write_text(
        '{"id": "test_7", "question": "When did the last king from Britain\'s House of Hanover '
        'die?", "golden_answers": ["20 June 1837"]}\n'
    )
    report = prepare_file(
        "bamboogle", "test", shared_data / "bamboogle_prerelease_sheet1.csv", ids_from=ref
    )
    hanover = report.questions[4]
    assert hanover.id == "test_7" and "source_id" not in hanover.metadata  # had no id of its own
    assert report.questions[0].id == "bamboogle-test-1"  # not in the reference: positional
    assert "1 of 125 rows matched by question" in report.summary()
    musique = prepare_file(
        "musique",
        "dev",
        shared_data / "hipporag_musique_train.json",
        ids_from=_reference(tmp_path, shared_data / "hipporag_musique_train.json"),
    )
    first = musique.questions[0]
    assert first.id == "dev_0" and first.metadata["source_id"] == "2hop__150763_14904"


def _reference(tmp_path, released):
    """A FlashRAG-style file for the first question of ``released`` (FlashRAG ids ``dev_<n>``)."""
    import json

    _, row = next(iter_records(released))
    ref = tmp_path / "flashrag_dev.jsonl"
    line = {"id": "dev_0", "question": row["question"] + "?", "golden_answers": [row["answer"]]}
    ref.write_text(json.dumps(line) + "\n")
    return ref


# --- datasets with passages ---------------------------------------------------------------------


def test_supporting_passages_kept_where_the_format_marks_them(shared_data):
    hotpot = prepare_file("hotpotqa", "dev", shared_data / "hotpot_dev_distractor_v1.first53.json")
    raw = {
        row["_id"]: row
        for _, row in iter_records(shared_data / "hotpot_dev_distractor_v1.first53.json")
    }
    for q in hotpot.questions:
        titles = {t for t, _ in raw[q.id]["supporting_facts"]}
        assert {p["title"] for p in q.metadata["supporting_passages"]} == titles
    musique = prepare_file("musique", "train", shared_data / "hipporag_musique_train.json")
    raw = {row["id"]: row for _, row in iter_records(shared_data / "hipporag_musique_train.json")}
    for q in musique.questions:
        gold = [p for p in raw[q.id]["paragraphs"] if p["is_supporting"]]
        assert [p["text"] for p in q.metadata["supporting_passages"]] == [
            p["paragraph_text"].strip() for p in gold
        ]
    # FlashRAG's MuSiQue rows keep each hop's supporting paragraph in the decomposition.
    flashrag = prepare_file("musique", "dev", shared_data / "flashrag_musique_dev.first5.jsonl")
    first = flashrag.questions[0]
    assert [p["title"] for p in first.metadata["supporting_passages"]] == [
        "Green (Steve Hillage album)",
        "Miquette Giraudy",
    ]


@pytest.mark.parametrize("name", sorted(CARRY_PASSAGES))
def test_corpus_from_every_file_that_carries_passages(shared_data, name):
    dataset = RELEASED[name][0]
    built = build_closed_corpus(dataset, [shared_data / name])
    assert built.questions == readme_rows(shared_data)[name]
    assert built.passages and all(p.text for p in built.passages)
    # Every gold supporting passage of every question is in its corpus.
    contents = {(p.title, p.text) for p in built.passages}
    report = prepare_file(dataset, RELEASED[name][1], shared_data / name)
    for q in report.questions:
        for p in q.metadata["supporting_passages"]:
            assert (p["title"], p["text"]) in contents


@pytest.mark.parametrize("name", sorted(set(RELEASED) - CARRY_PASSAGES))
def test_corpus_from_a_file_without_passages_says_so(shared_data, name):
    dataset = RELEASED[name][0]
    with pytest.raises(DatasetFormatError) as err:
        build_closed_corpus(dataset, [shared_data / name])
    message = str(err.value)
    if dataset == "musique":
        assert "FlashRAG-format row carries no passages" in message
        assert "keep only each hop's supporting paragraph" in message
        assert "musique_ans_v1.0_*.jsonl" in message
    else:
        assert message.startswith(f"{dataset} ships no passages with its questions")


def test_corpus_cli_on_flashrag_musique_is_one_line(shared_data, tmp_path):
    src = shared_data / "flashrag_musique_dev.first5.jsonl"
    result = CliRunner().invoke(
        app,
        [
            "data",
            "corpus",
            "--dataset",
            "musique",
            "--source",
            str(src),
            "--out",
            str(tmp_path / "c"),
        ],
    )
    assert result.exit_code == 2
    assert result.output.startswith(f"error: {src}:1: this FlashRAG-format row carries no passages")
    assert result.output.count("\n") == 1 and "Traceback" not in result.output


# --- splits and files of another dataset --------------------------------------------------------


@pytest.mark.parametrize("split", ["validation", "val", "dev", "Validation"])
def test_validation_is_dev(shared_data, split):
    report = prepare_file("musique", split, shared_data / "flashrag_musique_dev.first5.jsonl")
    assert {q.metadata["split"] for q in report.questions} == {"dev"}


def test_unknown_split_is_named():
    with pytest.raises(DatasetFormatError, match="unknown split 'devel' \\(expected train, dev"):
        prepare_file("nq", "devel", "x.jsonl")


@pytest.mark.parametrize(
    "name,wrong,right",
    [
        ("hipporag_musique_train.json", "hotpotqa", "musique"),
        ("hipporag_hotpotqa_train.json", "musique", "hotpotqa"),
        ("hotpot_dev_distractor_v1.first53.json", "2wikimultihopqa", "hotpotqa"),
        ("flashrag_musique_dev.first5.jsonl", "nq", "musique"),
        ("searchr1_nq_search_test.parquet", "hotpotqa", "nq"),
        ("triviaqa_sample.json", "nq", "triviaqa"),
        ("popqa_readme_excerpt.tsv", "nq", "popqa"),
        ("bamboogle_prerelease_sheet1.csv", "hotpotqa", "bamboogle"),
        ("NQ-open.dev.jsonl", "hotpotqa", "nq"),
    ],
)
def test_a_file_of_another_dataset_is_named(shared_data, name, wrong, right):
    src = shared_data / name
    try:
        report = prepare_file(wrong, "dev", src)
    except DatasetFormatError as err:  # the wrong mapper could not read it: the error says why
        assert f"are those of {right}: check --dataset" in str(err)
    else:
        assert len(report.warnings) == 1
        assert report.warnings[0].startswith(f"{src} is read as {wrong}, but its fields (")
        assert report.warnings[0].endswith(f"are those of {right}: check --dataset")


def test_cli_prints_the_other_dataset_warning(shared_data, tmp_path):
    src = shared_data / "hipporag_musique_train.json"
    result = CliRunner().invoke(
        app,
        ["data", "prepare", "--dataset", "hotpotqa", "--split", "train", "--source", str(src)]
        + ["--out", str(tmp_path / "o.jsonl")],
    )
    assert result.exit_code == 0
    assert f"warning: {src} is read as hotpotqa" in result.output


def test_cli_ids_from_and_validation_split(shared_data, tmp_path):
    out = tmp_path / "nq.jsonl"
    args = ["data", "prepare", "--dataset", "nq", "--split", "validation", "--out", str(out)]
    src = shared_data / "flashrag_quickstart_nq_test.jsonl"
    result = CliRunner().invoke(
        app,
        [
            *args,
            "--source",
            str(src),
            "--ids-from",
            str(shared_data / "searchr1_nq_search_test.parquet"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "17 of 17 rows matched by question" in result.output
    assert {q.metadata["split"] for q in read_questions(out)} == {"dev"}
    result = CliRunner().invoke(app, [*args, "--ids-from", str(src)])
    assert result.exit_code == 2 and "--ids-from needs --source" in result.output
