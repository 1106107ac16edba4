"""Which dataset a row's fields tell, for the rows the hub and FlashRAG give (the released files'
rows are checked in test_released_files.py)."""

import pytest

from research_rl.data.fingerprints import guess_dataset


@pytest.mark.parametrize(
    "row,dataset",
    [
        ({"question": "q", "answer": ["a"]}, "nq"),  # google-research-datasets/nq_open
        (
            {"id": "5a8b", "question": "q", "answer": "a", "type": "bridge", "level": "hard"}
            | {"supporting_facts": {"title": [], "sent_id": []}, "context": {"title": []}},
            "hotpotqa",
        ),
        (
            {"_id": "1", "type": "compositional", "question": "q", "context": [], "answer": "a"}
            | {"supporting_facts": [], "evidences": []},
            "2wikimultihopqa",
        ),
        (
            {"question": "q", "question_id": "tc_1", "question_source": "", "answer": {}}
            | {"entity_pages": {}, "search_results": {}},
            "triviaqa",
        ),
        (
            {"id": 1, "subj": "s", "prop": "occupation", "question": "q", "possible_answers": "[]"},
            "popqa",
        ),
        ({"Question": "q", "Answer": "a"}, "bamboogle"),  # chiayewken/bamboogle
        ({"id": "test_0", "question": "q", "golden_answers": ["a"], "data_source": "nq"}, "nq"),
        (
            {"question": "q", "golden_answers": ["a"], "data_source": "chiayewken/bamboogle"},
            "bamboogle",
        ),
        (
            {"id": "dev_0", "question": "q", "golden_answers": ["a"]}
            | {
                "metadata": {
                    "type": "bridge",
                    "level": "easy",
                    "supporting_facts": {},
                    "context": {},
                }
            },
            "hotpotqa",
        ),
        (
            {"id": "x", "question": "q", "golden_answers": ["a"], "metadata": {"dataset": "popqa"}},
            "popqa",
        ),
    ],
)
def test_rows_tell_their_dataset(row, dataset):
    assert guess_dataset(row).dataset == dataset


@pytest.mark.parametrize(
    "row",
    [
        {"id": "test_0", "question": "q", "golden_answers": ["a"]},  # FlashRAG NQ: nothing to tell
        {"question": "q", "answer": "a"},  # could be several datasets' rows
        {"question": "q", "answer": ["a"], "id": "1"},
        {"question": "q", "golden_answers": ["a"], "data_source": "my_own_set"},
        {"question": "q", "golden_answers": ["a"], "metadata": {"dataset": "squad"}},
    ],
)
def test_rows_that_do_not_tell_are_not_guessed(row):
    assert guess_dataset(row) is None
