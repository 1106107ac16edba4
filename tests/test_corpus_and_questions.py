import json

import pytest

from research_rl.corpus import CorpusError, read_corpus
from research_rl.questions import QuestionFileError, read_questions


def test_both_corpus_shapes(tmp_path):
    p = tmp_path / "c.jsonl"
    p.write_text(
        json.dumps({"id": "1", "contents": "Paris\nCapital of France."})
        + "\n\n"
        + json.dumps({"id": 2, "title": "Rome", "text": "Capital of Italy."})
        + "\n"
    )
    ps = list(read_corpus(p))
    assert [x.id for x in ps] == ["1", "2"]
    assert ps[1].title == "Rome" and ps[1].text == "Capital of Italy."


@pytest.mark.parametrize(
    "line,msg",
    [
        ("{not json", "invalid JSON"),
        ('{"contents": "a"}', "missing field 'id'"),
        ('{"id": "1"}', "needs 'contents'"),
        ("[1, 2]", "expected a JSON object"),
    ],
)
def test_bad_corpus_line_names_file_and_line(tmp_path, line, msg):
    p = tmp_path / "c.jsonl"
    p.write_text(json.dumps({"id": "0", "contents": "ok\nok"}) + "\n" + line + "\n")
    with pytest.raises(CorpusError) as err:
        list(read_corpus(p))
    assert f"{p}:2" in str(err.value) and msg in str(err.value)


def test_questions_reject_bad_rows(tmp_path):
    p = tmp_path / "q.jsonl"
    p.write_text(
        '{"id": "a", "question": "Q?", "golden_answers": "x"}\n'
        '{"id": "b", "question": "Q?", "golden_answers": []}\n'
    )
    with pytest.raises(QuestionFileError, match=r"q.jsonl:2: field 'golden_answers' is empty"):
        read_questions(p)
    assert read_questions(p, limit=1)[0].golden_answers == ["x"]
