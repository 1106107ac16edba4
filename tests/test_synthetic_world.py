"""The synthetic world: seeded, answers only in the corpus, held-out subjects never trained on."""

from __future__ import annotations

import json
import re

import pytest
from pydantic import ValidationError

from research_rl.corpus import read_corpus
from research_rl.questions import read_questions
from research_rl.retrieval.tokenize import tokenize
from research_rl.synthetic_world import (
    ONE_HOP_KINDS,
    TWO_HOP_KINDS,
    WorldConfig,
    generate_world,
    split_questions,
    write_world,
)

SIZES = dict(countries=4, cities=12, people=40, films=40, heldout_fraction=0.2, test_per_hops=10)
SMALL = WorldConfig(**SIZES, distractors=1)
SEED = 3


def with_distractors(n: int) -> WorldConfig:
    return SMALL.model_copy(update={"distractors": n})


def test_same_seed_same_files_other_seed_other_world(tmp_path):
    a = write_world(SMALL, tmp_path / "a", SEED)
    b = write_world(SMALL, tmp_path / "b", SEED)
    c = write_world(SMALL, tmp_path / "c", SEED + 1)
    for name in ("corpus", "train", "test"):
        assert getattr(a, name).read_bytes() == getattr(b, name).read_bytes()
    assert a.corpus.read_bytes() != c.corpus.read_bytes()
    assert json.loads((tmp_path / "a" / "world.json").read_text())["seed"] == 3


def test_answer_is_never_in_the_question_and_always_in_its_passage(tmp_path):
    files = write_world(SMALL, tmp_path, SEED)
    passages = {p.title: p for p in read_corpus(files.corpus)}
    questions = read_questions(files.train) + read_questions(files.test)
    assert questions
    for q in questions:
        (answer,) = q.golden_answers
        assert answer.lower() not in q.question.lower()
        # The last entity of the chain holds the answer in its own passage, and only there among
        # the chain's passages: each hop needs its own search.
        chain = q.metadata["chain"]
        assert answer in passages[chain[-1]].text
        for earlier in chain[:-1]:
            assert answer not in passages[earlier].text
        assert q.metadata["hops"] == len(chain)


def test_two_hop_questions_need_the_intermediate_entity(tmp_path):
    world = generate_world(SMALL, SEED)
    for q in world.questions():
        if q.metadata["kind"] in TWO_HOP_KINDS:
            subject, middle = q.metadata["chain"]
            assert middle not in q.question
            assert subject in q.question


def test_heldout_split_is_disjoint_and_balanced():
    world = generate_world(SMALL, SEED)
    train, test = split_questions(world, SMALL, SEED)
    assert {q.id for q in train}.isdisjoint({q.id for q in test})
    train_subjects = {q.metadata["subject"] for q in train}
    test_subjects = {q.metadata["subject"] for q in test}
    assert train_subjects.isdisjoint(test_subjects)
    assert test_subjects <= world.heldout
    hops = [q.metadata["hops"] for q in test]
    assert hops.count(1) == SMALL.test_per_hops == hops.count(2)
    assert {q.metadata["kind"] for q in train} == set(ONE_HOP_KINDS + TWO_HOP_KINDS)


def test_names_are_unique_rare_words(tmp_path):
    world = generate_world(SMALL, SEED)
    names = (
        world.countries
        + list(world.city_country)
        + list(world.person_city)
        + list(world.film_director)
    )
    assert len(names) == len(set(names))
    for name in names:
        assert re.fullmatch(r"[A-Z][a-z]+", name)
        assert tokenize(name) == [name.lower()]  # one BM25 term, never a stopword


def test_each_passage_names_two_distractors_of_the_answers_type_after_the_asked_relation():
    world = generate_world(with_distractors(2), SEED)
    passages = {p.title: p.text for p in world.passages()}
    for person, city in world.person_city.items():
        home, work = world.person_home[person], world.person_work[person]
        assert {home, work} <= set(world.city_country) and len({city, home, work}) == 3
        text = passages[person]
        assert (
            text.index(f"born in {city}")
            < text.index(f"lives in {home}")
            < text.index(f"works in {work}")
        )
    for film, director in world.film_director.items():
        star, feature = world.film_star[film], world.film_feature[film]
        assert {star, feature} <= set(world.person_city) and len({director, star, feature}) == 3
        text = passages[film]
        assert (
            text.index(f"directed by {director}")
            < text.index(f"stars {star}")
            < text.index(f"features {feature}")
        )
    for city, country in world.city_country.items():
        border, trade = world.city_border[city], world.city_trade[city]
        assert {border, trade} <= set(world.countries) and len({country, border, trade}) == 3
        text = passages[city]
        assert (
            text.index(f"city in {country}")
            < text.index(f"border of {border}")
            < text.index(f"trades with {trade}")
        )


def test_fewer_distractors_leave_the_rest_of_the_world_as_it_was():
    plain, one, two = (generate_world(with_distractors(n), SEED) for n in (0, 1, 2))
    assert not plain.person_home and not plain.film_star and not plain.city_border
    assert not one.person_work and not one.film_feature and not one.city_trade
    for rich in (one, two):
        assert (plain.person_city, plain.film_director, plain.city_country) == (
            rich.person_city,
            rich.film_director,
            rich.city_country,
        )
        assert [q.id for q in plain.questions()] == [q.id for q in rich.questions()]
    # The second distractor is added to the first one's world: one world is two's minus it.
    assert (one.person_home, one.film_star, one.city_border) == (
        two.person_home,
        two.film_star,
        two.city_border,
    )
    assert all("lives in" not in p.text and "stars" not in p.text for p in plain.passages())
    assert all("works in" not in p.text and "features" not in p.text for p in one.passages())


def test_a_pool_too_small_for_two_distractors_gives_what_it_can():
    tiny = dict(countries=2, cities=3, people=6, films=6)
    world = generate_world(SMALL.model_copy(update={**tiny, "distractors": 2}))
    for city, country in world.city_country.items():
        assert world.city_border[city] != country
        assert (
            city not in world.city_trade
        )  # two countries: one is the answer, one the first distractor
    assert all("trades with" not in p.text for p in world.passages())


def test_the_world_config_names_a_bad_or_missing_key():
    with pytest.raises(ValidationError, match="distractors"):
        WorldConfig(**SIZES, distractors=3)
    with pytest.raises(ValidationError, match="test_per_hops"):
        WorldConfig(
            countries=4, cities=12, people=40, films=40, heldout_fraction=0.2, distractors=1
        )


def test_a_world_without_films_has_people_cities_and_countries_only():
    """The tiny test fixtures' form (scripts/make_tiny_assets.py)."""
    cfg = WorldConfig(**{**SIZES, "films": 0, "distractors": 0})
    world = generate_world(cfg, seed=0)
    kinds = {q.metadata["kind"] for q in world.questions()}
    assert kinds == {"born_in", "born_country", "located_in"}
    assert not any(p.id.startswith("film-") for p in world.passages())
    assert world.heldout and world.heldout <= set(world.person_city) | set(world.city_country)
