"""A seeded synthetic knowledge world: entities, relations, a corpus and questions about it. The
demo trains on it, ``scripts/make_tiny_assets.py`` makes the test fixtures from its smallest form
and ``benchmarks/rollout.py`` searches a large one.

Entities are countries, cities, people and films, named with random syllables so that no name
means anything to a tokenizer or a retriever except through the corpus. Relations form a chain
(film -> directed by person -> born in city -> located in country), and every passage states only
the outgoing relations of its own entity, so a two-hop question needs two searches: the passage of
the question's subject names an intermediate entity whose own passage holds the answer.

Each passage also names ``distractors`` (0-2) other entities of its answer's type through relations
no question asks about ("Ulaga lives in Kemora.", "Dorimu stars Ulaga.", "Kemora trades with
Lumo."): a passage offers several candidate names, and the policy must read the relation to pick
the one that answers or the one to search next.

Questions (the answer is another entity's name, never in the question): one-hop ``born_in`` (Where
was Ulaga born?), ``directed_by`` (Who directed Dorimu?), ``located_in`` (In which country is
Kemora?); two-hop ``director_born`` (Where was the director of Dorimu born?), ``born_country`` (In
which country was Ulaga born?).

The held-out split asks only about *held-out subjects*: entities no training question names, so
the policy cannot have learnt their facts from the reward and must retrieve them.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import Field

from research_rl.config import StrictModel
from research_rl.corpus import Passage, write_corpus
from research_rl.questions import Question, write_questions
from research_rl.run_dir import write_json_atomic

ONE_HOP_KINDS = ("born_in", "directed_by", "located_in")
TWO_HOP_KINDS = ("director_born", "born_country")

_ONSETS = tuple(
    ["b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "dr", "kl", "tr"]
)
_VOWELS = ("a", "e", "i", "o", "u")
_CODAS = ("", "", "", "n", "r", "l", "s")
_OCCUPATIONS = ("painter", "writer", "singer", "dancer", "actor", "poet", "architect", "chef")
_GENRES = ("drama", "comedy", "thriller", "western", "musical", "documentary")


class WorldConfig(StrictModel):
    """The world's sizes (``configs/demo.yaml``: ``world:``); the seed is the demo's."""

    countries: int = Field(ge=1)
    cities: int = Field(ge=1)
    people: int = Field(ge=1)
    films: int = Field(ge=0)
    heldout_fraction: float = Field(gt=0, lt=1)  # of each subject type
    test_per_hops: int = Field(ge=1)  # held-out questions of each hop count
    distractors: int = Field(ge=0, le=2)  # other names of the answer's type in each passage


@dataclass
class World:
    countries: list[str]
    city_country: dict[str, str]
    person_city: dict[str, str]
    person_job: dict[str, str]
    film_director: dict[str, str]
    film_genre: dict[str, str]
    heldout: set[str] = field(default_factory=set)  # subjects only test questions name
    # The distractor relations, stated after the asked one, then the second ones.
    person_home: dict[str, str] = field(default_factory=dict)
    film_star: dict[str, str] = field(default_factory=dict)
    city_border: dict[str, str] = field(default_factory=dict)
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


def generate_world(cfg: WorldConfig, seed: int = 0) -> World:
    """The same ``cfg`` and ``seed`` always give the same world."""
    rng = random.Random(seed)
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
        if group:
            k = max(1, round(len(group) * cfg.heldout_fraction))
            world.heldout.update(rng.sample(group, k))
    # Distractors draw from a stream of their own, first ones before second ones: a world's
    # facts and questions do not depend on how many distractors its passages carry.
    drng = random.Random(f"{seed}-distractors")
    relations = (
        ("person_home", "person_work", world.person_city, cities),
        ("film_star", "film_feature", world.film_director, people),
        ("city_border", "city_trade", world.city_country, countries),
    )
    for rank in range(cfg.distractors):
        for first, second, asked, pool in relations:
            named = [asked] if rank == 0 else [asked, getattr(world, first)]
            setattr(world, second if rank else first, _others(drng, named, pool))
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


def split_questions(
    world: World, cfg: WorldConfig, seed: int = 0
) -> tuple[list[Question], list[Question]]:
    """(train, test): test asks only about held-out subjects, balanced between one and two hops;
    train never names a held-out subject."""
    rng = random.Random(seed + 1)
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
    world: World  # what the files were written from


def write_world(cfg: WorldConfig, out_dir: str | Path, seed: int = 0) -> WorldFiles:
    """Generate the world and write ``corpus.jsonl``, ``train.jsonl``, ``test.jsonl`` and
    ``world.json`` (the generator settings) under ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    world = generate_world(cfg, seed)
    train, test = split_questions(world, cfg, seed)
    files = WorldFiles(out / "corpus.jsonl", out / "train.jsonl", out / "test.jsonl", world)
    write_corpus(world.passages(), files.corpus)
    write_questions(train, files.train)
    write_questions(test, files.test)
    write_json_atomic(out / "world.json", {"seed": seed, **cfg.model_dump()})
    return files
