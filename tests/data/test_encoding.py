"""Released files read in the encoding their bytes say, and spreadsheet CSV layouts."""

import codecs

import pytest

from research_rl.data.encoding import detect_encoding
from research_rl.data.formats import DatasetFormatError, iter_records
from research_rl.data.prepare import prepare_file


def records(path):
    notes = []
    return [row for _, row in iter_records(path, notes)], notes


def test_utf8_is_read_without_a_note(tmp_path):
    src = tmp_path / "q.csv"
    src.write_text("Question,Answer\nWho painted Guernica?,Pablo Picasso\nWo liegt Köln?,NRW\n")
    rows, notes = records(src)
    assert rows[1] == {"Question": "Wo liegt Köln?", "Answer": "NRW"} and notes == []


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl", ".json"])
def test_a_byte_order_mark_is_stripped_not_a_missing_field(tmp_path, suffix):
    src = tmp_path / f"q{suffix}"
    body = {
        ".csv": "question,answer\nq1,a\n",
        ".tsv": "question\tanswer\nq1\ta\n",
        ".jsonl": '{"question": "q1", "answer": "a"}\n',
        ".json": '[{"question": "q1", "answer": "a"}]',
    }[suffix]
    src.write_bytes(codecs.BOM_UTF8 + body.encode("utf-8"))
    rows, notes = records(src)
    assert rows == [{"question": "q1", "answer": "a"}]
    assert notes == [f"{src}: UTF-8 with a byte-order mark (stripped)"]


def test_utf16_with_a_bom_as_excel_writes_unicode_text(tmp_path):
    src = tmp_path / "q.tsv"
    src.write_bytes("Question\tAnswer\nWo liegt Köln?\tNRW\n".encode("utf-16"))
    rows, notes = records(src)
    assert rows == [{"Question": "Wo liegt Köln?", "Answer": "NRW"}]
    assert "UTF-16 with a byte-order mark" in notes[0]


def test_windows_1252_falls_back_with_a_note_naming_the_first_bad_byte(tmp_path):
    src = tmp_path / "q.csv"
    data = "Question,Answer\nWho said “Now”?,Oppenheimer\n".encode("cp1252")
    src.write_bytes(data)
    rows, notes = records(src)
    assert rows == [{"Question": "Who said “Now”?", "Answer": "Oppenheimer"}]
    offset = data.index(b"\x93")
    assert notes == [f"{src}: not UTF-8 (byte 0x93 at offset {offset}); read as Windows-1252"]


def test_bytes_windows_1252_leaves_undefined_read_as_latin1(tmp_path):
    src = tmp_path / "q.csv"
    src.write_bytes(b"Question,Answer\nq\x81,a\n")
    rows, notes = records(src)
    assert rows == [{"Question": "q\x81", "Answer": "a"}]
    assert notes[0].endswith("read as Latin-1")


def test_a_bad_byte_past_the_first_chunk_is_found(tmp_path):
    src = tmp_path / "big.jsonl"
    line = b'{"question": "q", "answer": "a"}\n'
    head = line * (((1 << 20) // len(line)) + 5)  # past the reader's first 1 MiB chunk
    src.write_bytes(head + b'{"question": "caf\xe9", "answer": "a"}\n')
    encoding = detect_encoding(src)
    assert encoding.name == "cp1252"
    assert f"byte 0xe9 at offset {len(head) + 17}" in encoding.note
    # A multi-byte UTF-8 character split across the chunk boundary is not a bad byte.
    split = tmp_path / "split.jsonl"
    pad = b"x" * ((1 << 20) - 1)
    split.write_bytes(b'{"question": "' + pad + "é".encode() + b'", "answer": "a"}\n')
    assert detect_encoding(split).name == "utf-8"


def test_unnamed_spacer_columns_are_dropped_but_never_hide_a_value(tmp_path):
    src = tmp_path / "bamboogle.csv"
    src.write_text("Question,,,,Answer,Answer 2\nq1,,,,a,\nq2,,,,b,b2\n")
    rows, _ = records(src)
    assert rows == [
        {"Question": "q1", "Answer": "a", "Answer 2": ""},
        {"Question": "q2", "Answer": "b", "Answer 2": "b2"},
    ]
    src.write_text("Question,,Answer\nq1,oops,a\n")
    with pytest.raises(DatasetFormatError, match=r"bamboogle.csv:2: a value in unnamed column 2"):
        records(src)


@pytest.mark.parametrize(
    "text,message",
    [
        ("Question,Answer,Question\nq,a,q\n", ":1: column 'Question' appears twice in the header"),
        ("Question,Answer\nq,a,extra\n", ":2: more cells than header columns"),
        ("Question,Answer\nq\n", ":2: missing cells for ['Answer']"),
        ('Question,Answer\n"' + "x" * 200_000 + '",a\n', ":2: unreadable CSV (field larger"),
    ],
)
def test_csv_layout_errors_name_file_and_line(tmp_path, text, message):
    src = tmp_path / "q.csv"
    src.write_text(text)
    with pytest.raises(DatasetFormatError) as err:
        records(src)
    assert str(err.value).startswith(str(src)) and message in str(err.value)


def test_trailing_empty_cells_beyond_the_header_are_not_an_error(tmp_path):
    src = tmp_path / "q.csv"
    src.write_text("Question,Answer\nq,a,,\n")
    assert records(src)[0] == [{"Question": "q", "Answer": "a"}]


def test_a_directory_is_named_as_such(tmp_path):
    with pytest.raises(DatasetFormatError, match="is a directory, not a dataset file"):
        prepare_file("nq", "dev", tmp_path)
