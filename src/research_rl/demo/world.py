"""A seeded synthetic knowledge world: entities, relations, a corpus and questions about it.

Entities are countries, cities, people and films, named with random syllables so that no name
means anything to a tokenizer or a retriever except through the corpus. Relations form a chain
(film -> directed by person -> born in city -> located in country), and every passage states only
the outgoing relations of its own entity, so a two-hop question needs two searches: the passage of
the question's subject names an intermediate entity whose own passage holds the answer.

With ``distractors`` (a count per passage type) each passage also names one or two entities of
the answer's type that answer nothing ("Ulaga lives in Kemora. Ulaga works in Pesa.", "Dorimu
stars Ulaga. Dorimu features Tovi.", "Kemora lies near the border of Bastia. Kemora trades with
Lumo."), so a passage offers several candidate names and the policy must read the relation to pick
one. Without them the one name a passage adds is the answer, and a policy that boxes the last new
name it read scores well before any reinforcement; with two, a blind pick at each of a two-hop
question's hops is right about one time in nine.

Questions (the answer is another entity's name, never in the question):

==================  =======  =========================================  ========
kind                hops     example                                     answer
==================  =======  =========================================  ========
``born_in``         one      Where was Ulaga born?                       city
``directed_by``     one      Who directed Dorimu?                        person
``located_in``      one      In which country is Kemora?                 country
``director_born``   two      Where was the director of Dorimu born?      city
``born_country``    two      In which country was Ulaga born?            country
==================  =======  =========================================  ========

The held-out split asks only about *held-out subjects*: entities no training question names, so
the policy cannot have learnt their facts from the reward and must retrieve them.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from research_rl.config import StrictModel
from research_rl.corpus import Passage, write_corpus
from research_rl.questions import Question, write_questions

ONE_HOP_KINDS = ("born_in", "directed_by", "located_in")
TWO_HOP_KINDS = ("director_born", "born_country")

_ONSETS = (
    "b",
    "d",
    "f",
    "g",
    "k",
    "l",
    "m",
    "n",
    "p",
    "r",
    "s",
    "t",
    "v",
    "z",
    "br",
    "dr",
    "kl",
    "tr",
)
_VOWELS = ("a", "e", "i", "o", "u")
_CODAS = ("", "", "", "n", "r", "l", "s")
_OCCUPATIONS = ("painter", "writer", "singer", "dancer", "actor", "poet", "architect", "chef")
_GENRES = ("drama", "comedy", "thriller", "western", "musical", "documentary")


class Distractors(StrictModel):
    """Distractors per passage, by the type of entity the passage is about (0-2 each)."""

    person: int = Field(1, ge=0, le=2)  # cities a person lives in, works in
    film: int = Field(1, ge=0, le=2)  # people a film stars, features
    city: int = Field(1, ge=0, le=2)  # countries a city lies near the border of, trades with


class WorldConfig(StrictModel):
    seed: int = 0
    countries: int = Field(8, ge=1)
    cities: int = Field(30, ge=1)
    # 300 of each: with 150, half the people were the answer of no training question, and GRPO
    # learnt a prior over the rewarded names instead of copying the director from the passage.
    people: int = Field(300, ge=1)
    films: int = Field(300, ge=1)
    heldout_fraction: float = Field(0.2, gt=0, lt=1)  # of each subject type
    test_per_hops: int = Field(50, ge=1)  # held-out questions of each hop count
    # How many other entities of its answer's type each passage also names, through relations no
    # question asks about (a person lives in / works in a city, a film stars / features a person, a
    # city lies near the border of / trades with a country): which retrieved name answers, and which
    # one to search next, is then a matter of reading the relation, as in real passages, not of
    # picking the one new name. One number for every passage type, or one per type.
    distractors: Distractors = Field(default_factory=Distractors)

    @field_validator("distractors", mode="before")
    @classmethod
    def _one_count_for_all(cls, value: Any) -> Any:
        if isinstance(value, int):  # a bool too: the old on/off switch, one distractor or none
            return dict.fromkeys(Distractors.model_fields, int(value))
        return value


@dataclass
class World:
    countries: list[str]
    city_country: dict[str, str]
    person_city: dict[str, str]
    person_job: dict[str, str]
    film_director: dict[str, str]
    film_genre: dict[str, str]
    heldout: set[str] = field(default_factory=set)  # subjects only test questions name
    # The distractor relations (``WorldConfig.distractors``), stated after the asked one.
    person_home: dict[str, str] = field(default_factory=dict)
    film_star: dict[str, str] = field(default_factory=dict)
    city_border: dict[str, str] = field(default_factory=dict)
    # The second distractor of each passage (``distractors: 2``), stated last.
    person_work: dict[str, str] = field(default_factory=dict)
    film_feature: dict[str, str] = field(default_factory=dict)
    city_trade: dict[str, str] = field(default_factory=dict)

    def passages(self) -> list[Passage]:
        out: list[Passage] = []
        for c in self.countries:
            out.append(Passage.from_title_text(f"country-{c}", c, f"{c} is a country."))
        for city, country in self.city_country.items():
            text = (
                f"{city} is a city in {country}."
                + _also(self.city_border, city, "lies near the border of")
                + _also(self.city_trade, city, "trades with")
            )
            out.append(Passage.from_title_text(f"city-{city}", city, text))
        for p, city in self.person_city.items():
            job = self.person_job[p]
            text = (
                f"{p} is {_article(job)} {job}. {p} was born in {city}."
                + _also(self.person_home, p, "lives in")
                + _also(self.person_work, p, "works in")
            )
            out.append(Passage.from_title_text(f"person-{p}", p, text))
        for f, director in self.film_director.items():
            genre = self.film_genre[f]
            text = (
                f"{f} is {_article(genre)} {genre} film directed by {director}."
                + _also(self.film_star, f, "stars")
                + _also(self.film_feature, f, "features")
            )
            out.append(Passage.from_title_text(f"film-{f}", f, text))
        return out

    def questions(self) -> list[Question]:
        qs: list[Question] = []

        def add(kind: str, subject: str, text: str, answer: str, chain: list[str]) -> None:
            hops = 1 if kind in ONE_HOP_KINDS else 2
            meta = {"kind": kind, "hops": hops, "subject": subject, "chain": chain}
            qs.append(Question(f"{kind}-{subject}", text, [answer], meta))

        for p, city in self.person_city.items():
            add("born_in", p, f"Where was {p} born?", city, [p])
            country = self.city_country[city]
            add("born_country", p, f"In which country was {p} born?", country, [p, city])
        for f, director in self.film_director.items():
            add("directed_by", f, f"Who directed {f}?", director, [f])
            city = self.person_city[director]
            add("director_born", f, f"Where was the director of {f} born?", city, [f, director])
        for city, country in self.city_country.items():
            add("located_in", city, f"In which country is {city}?", country, [city])
        return qs

    def vocabulary_text(self) -> list[str]:
        """Every text the policy will read: passages and questions (the tokenizer trains on it)."""
        return [p.contents for p in self.passages()] + [q.question for q in self.questions()]


def _also(relation: dict[str, str], entity: str, verb: str) -> str:
    """The distractor sentence of ``entity`` (empty without one)."""
    other = relation.get(entity)
    return f" {entity} {verb} {other}." if other else ""


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _names(rng: random.Random, n: int, taken: set[str]) -> list[str]:
    out: list[str] = []
    while len(out) < n:
        syllables = rng.choice((2, 2, 3))
        name = "".join(
            rng.choice(_ONSETS) + rng.choice(_VOWELS) + rng.choice(_CODAS) for _ in range(syllables)
        )
        name = name.capitalize()
        if name not in taken:
            taken.add(name)
            out.append(name)
    return out


def generate_world(cfg: WorldConfig) -> World:
    """The same ``cfg`` (seed included) always gives the same world."""
    rng = random.Random(cfg.seed)
    taken: set[str] = set()
    countries = _names(rng, cfg.countries, taken)
    cities = _names(rng, cfg.cities, taken)
    people = _names(rng, cfg.people, taken)
    films = _names(rng, cfg.films, taken)
    world = World(
        countries=countries,
        city_country={c: rng.choice(countries) for c in cities},
        person_city={p: rng.choice(cities) for p in people},
        person_job={p: rng.choice(_OCCUPATIONS) for p in people},
        film_director={f: rng.choice(people) for f in films},
        film_genre={f: rng.choice(_GENRES) for f in films},
    )
    for group in (cities, people, films):
        k = max(1, round(len(group) * cfg.heldout_fraction))
        world.heldout.update(rng.sample(group, k))
    d = cfg.distractors
    # A stream of its own: the rest of the world is the same with or without distractors. The
    # first distractors are drawn before the second ones, so a world with one per passage is the
    # same as it was before there could be two.
    drng = random.Random(f"{cfg.seed}-distractors")
    if d.person:
        world.person_home = _others(drng, [world.person_city], cities)
    if d.film:
        world.film_star = _others(drng, [world.film_director], people)
    if d.city:
        world.city_border = _others(drng, [world.city_country], countries)
    if d.person >= 2:
        world.person_work = _others(drng, [world.person_city, world.person_home], cities)
    if d.film >= 2:
        world.film_feature = _others(drng, [world.film_director, world.film_star], people)
    if d.city >= 2:
        world.city_trade = _others(drng, [world.city_country, world.city_border], countries)
    return world


def _others(rng: random.Random, named: list[dict[str, str]], pool: list[str]) -> dict[str, str]:
    """For each entity of ``named[0]``, a random member of ``pool`` that none of the ``named``
    relations already gives it (none where the pool holds nothing else)."""
    out = {}
    for entity in named[0]:
        taken = {rel[entity] for rel in named if entity in rel}
        rest = [x for x in pool if x not in taken]
        if rest:
            out[entity] = rng.choice(rest)
    return out


def split_questions(world: World, cfg: WorldConfig) -> tuple[list[Question], list[Question]]:
    """(train, test): test asks only about held-out subjects, balanced between one and two hops;
    train never names a held-out subject."""
    rng = random.Random(cfg.seed + 1)
    train: list[Question] = []
    heldout_one: list[Question] = []
    heldout_two: list[Question] = []
    for q in world.questions():
        if q.metadata["subject"] not in world.heldout:
            train.append(q)
        elif q.metadata["hops"] == 1:
            heldout_one.append(q)
        else:
            heldout_two.append(q)
    test = _sample(rng, heldout_one, cfg.test_per_hops) + _sample(
        rng, heldout_two, cfg.test_per_hops
    )
    rng.shuffle(train)
    return train, test


def _sample(rng: random.Random, qs: list[Question], n: int) -> list[Question]:
    return rng.sample(qs, n) if len(qs) > n else list(qs)


@dataclass(frozen=True)
class WorldFiles:
    corpus: Path
    train: Path
    test: Path


def write_world(cfg: WorldConfig, out_dir: str | Path) -> WorldFiles:
    """Generate the world and write ``corpus.jsonl``, ``train.jsonl``, ``test.jsonl`` and
    ``world.json`` (the generator settings) under ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    world = generate_world(cfg)
    train, test = split_questions(world, cfg)
    files = WorldFiles(out / "corpus.jsonl", out / "train.jsonl", out / "test.jsonl")
    write_corpus(world.passages(), files.corpus)
    write_questions(train, files.train)
    write_questions(test, files.test)
    (out / "world.json").write_text(json.dumps(cfg.model_dump(), indent=2) + "\n", encoding="utf-8")
    return files
