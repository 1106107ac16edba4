"""Format training: teach a fresh policy the protocol, and nothing about which answers are right.

A model that has never seen ``<search>`` cannot emit it, so before GRPO the policy is trained as a
causal LM on two kinds of text:

- the corpus passages (plain language modelling: what names and sentences look like);
- protocol transcripts: the rendered prompt of a training question, then a completion in the
  protocol whose every choice is random. The number of searches is random; the first query is a
  random name of the question, each later one a random name of the results retrieved so far that
  was not searched for yet; the boxed answer is a random name of the retrieved results (of the
  question when nothing was retrieved). "Name" is the default ``span_pool``: the entity mentions a
  pretrained LM already prefers to search for and answer with; ``span_pool: words`` draws spans of
  1-3 content words instead. The gold answer is never consulted, so the transcripts teach *how* to
  search and answer, never *what* to search or which name answers. That is left to the reward.

Transcripts are tokenised segment by segment exactly as the rollout engine builds a rollout (the
prompt, each model segment, each inserted ``<result>`` block), and the inserted results carry no
loss, as in GRPO. The random choices (the query and answer spans) weigh ``choice_weight`` times a
boilerplate token in the loss: the boilerplate is learnt within a few dozen steps, while the choices
are few tokens per transcript and carry everything the protocol leaves to the policy. A few copy
rows (``research_rl.demo.copy_training``) ride along in every batch so the copying skill learnt
before this stage is not forgotten during it.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from pydantic import Field

from research_rl import tags
from research_rl.config import StrictModel
from research_rl.corpus import Passage
from research_rl.demo.copy_training import CopyTrainingConfig, copy_row, trimmed_words, world_words
from research_rl.demo.weighted_lm import cosine_schedule, lm_step
from research_rl.questions import Question
from research_rl.retrieval.base import Hit, Retriever
from research_rl.retrieval.tokenize import STOPWORDS

# The retriever's stopwords, the question words it keeps (they match nothing in the corpus) and
# the labels of a rendered result block ("Doc 1 (Title: …)").
_FUNCTION_WORDS = STOPWORDS | {"where", "who", "which", "what", "when", "how", "doc", "title"}

FIRST_THOUGHTS = ("I need to search for this.", "I should look this up.", "Let me search.")
NEXT_THOUGHTS = ("I need more information.", "Let me search again.", "I should search more.")
FINAL_THOUGHTS = ("I can answer now.", "I have the answer.", "I know the answer now.")


class FormatTrainingConfig(StrictModel):
    # 1000: at 400 some seeds still broke the format in 25-50% of sampled rollouts (a search tag
    # closed by "} </answer>", a fourth search), and GRPO from such a policy learnt to stop
    # searching.
    steps: int = 1000
    batch_size: int = 16
    learning_rate: float = 2e-3
    warmup_steps: int = 30
    weight_decay: float = 0.0  # decay would shrink rare names' embeddings between sightings
    corpus_fraction: float = 0.5  # share of each batch that is plain passages
    # Probability of 0, 1, 2, 3 ... searches in a transcript. Three is the mode, so that the greedy
    # policy before GRPO searches past the answer's passage of both question types: with two, it
    # followed a two-hop chain and boxed its answer by luck on 0.14-0.34 of two-hop questions.
    # Two searches stay likely (0.35), so GRPO samples them often enough to learn when to stop.
    search_count_probs: list[float] = [0.05, 0.15, 0.35, 0.45]
    question_query_prob: float = 0.0  # a later query spans the question (else an earlier result)
    span_length_probs: list[float] = [0.6, 0.3, 0.1]  # spans of 1, 2, 3 words
    # What a span is drawn from: "words" (content words, spans of span_length_probs) or "names"
    # (one capitalised content word, uniform over the distinct names in the source: the entity
    # mentions a pretrained LM already prefers to search for and to answer with).
    span_pool: Literal["words", "names"] = "names"
    # With names: a later query drawn from the results skips names already searched for (a repeated
    # query retrieves nothing new). Still blind to the gold: the new name may be any retrieved one.
    fresh_queries: bool = True
    # What the boxed answer is drawn from (with names): "read", any name of the results retrieved so
    # far; "last_new", a name the last result block added (one not read before it), falling back
    # to the names of that block, then to the question's. Still blind to the gold. With "read" the
    # policy boxed names it had not read in 59% of rollouts (frequent names of the corpus); with
    # "last_new", in 13%: the answer to learn is then one of the few names on the page it reads.
    answer_pool: Literal["read", "last_new"] = "last_new"
    # Loss weight of a query or answer span token, relative to a boilerplate token (1). At 1 the
    # policy learnt the format but copied the question's subject into 1-2% of its queries; at 3,
    # 34-55% (train questions, 600 steps, by variant); at 5 and more the format itself degraded.
    choice_weight: float = 3.0
    copy_rows: int = 4  # copy-pretraining rows mixed into every batch (keeps the skill)
    # Thoughts quote a random span too ("I need to find <span of the question>", "I found <span
    # of a result>"). Off by default: with quotes, most invalid rollouts of the format-trained
    # policy were thoughts that never closed after a quoted span.
    quote_in_thoughts: bool = False
    # How many of each set of thought phrases the transcripts use (1: one fixed phrase per place).
    # Varied phrases cost rollout tokens and add sampling noise GRPO must average out; with one,
    # GRPO's rollouts were shorter and its gains steadier (docs/demo.md).
    thought_variants: int = Field(1, ge=1, le=3)
    # Also learn the inserted result blocks (GRPO never does: there they are masked). Off by
    # default: the policy then learnt to write result blocks of its own, breaking the format.
    loss_on_results: bool = False
    seed: int = 0


@dataclass
class Transcript:
    """One random protocol transcript: alternating model-written and inserted segments."""

    prompt: str
    segments: list[tuple[str, bool]] = field(default_factory=list)  # (text, written by the model)
    # Per segment, the (start, end) character ranges of its random choices (query, answer, quote).
    choices: list[list[tuple[int, int]]] = field(default_factory=list)
    queries: list[str] = field(default_factory=list)
    answer: str = ""

    @property
    def completion(self) -> str:
        return "".join(text for text, _ in self.segments)

    def add(self, parts: Sequence[tuple[str, bool]], by_model: bool) -> None:
        """Append one segment made of ``(text, is_a_choice)`` parts."""
        text, ranges = "", []
        for piece, is_choice in parts:
            if is_choice:
                ranges.append((len(text), len(text) + len(piece)))
            text += piece
        self.segments.append((text, by_model))
        self.choices.append(ranges)


def words(text: str) -> list[str]:
    """The content words of ``text``: whitespace words with punctuation trimmed from their edges,
    stopwords (the retriever's list, plus question words) dropped. A span of stopwords is neither a
    query the retriever can use nor an answer to anything, so spans are drawn from content words
    only; which content words is still left to chance."""
    return [w for w in trimmed_words(text) if w.lower() not in _FUNCTION_WORDS]


def names(text: str) -> list[str]:
    """The distinct capitalised content words of ``text`` (entity names), in order of first use."""
    return list(dict.fromkeys(w for w in words(text) if w[:1].isupper()))


def random_span(rng: random.Random, source: Sequence[str], length_probs: Sequence[float]) -> str:
    """A span of consecutive words, its start uniform over ``source``; its length drawn from
    ``length_probs`` (1, 2, 3 ... words), cut at the end of ``source``."""
    if not source:
        raise ValueError("random_span: empty source")
    length = rng.choices(range(1, len(length_probs) + 1), weights=length_probs)[0]
    start = rng.randrange(len(source))
    return " ".join(source[start : start + length])


def untagged(result: str) -> str:
    """An inserted result block as the model reads it, its tags left out: spans come from this."""
    return result.replace(tags.RESULT_OPEN, " ").replace(tags.RESULT_CLOSE, " ")


class TranscriptSampler:
    """Random transcripts for questions, with real retrieval.

    ``render_prompt(question) -> str`` and ``render_result(hits) -> str`` must be the rollout
    engine's own (the inserted text, ``<result>`` tags included), so the transcripts look exactly
    like the rollouts the policy will produce.
    """

    def __init__(
        self,
        retriever: Retriever,
        topk: int,
        render_prompt: Callable[[str], str],
        render_result: Callable[[list[Hit]], str],
        cfg: FormatTrainingConfig,
    ) -> None:
        self.retriever = retriever
        self.topk = topk
        self.render_prompt = render_prompt
        self.render_result = render_result
        self.cfg = cfg
        by_name = cfg.span_pool == "names"
        self._pool = names if by_name else words
        self._lengths = [1.0] if by_name else cfg.span_length_probs  # a name is one word
        self._fresh = cfg.fresh_queries and by_name  # a word span must stay contiguous
        self._last_new = cfg.answer_pool == "last_new" and by_name

    def sample(self, question: Question, rng: random.Random) -> Transcript:
        cfg = self.cfg
        t = Transcript(prompt=self.render_prompt(question.question))
        question_words = self._pool(question.question) or words(question.question)
        read = ""
        result_words: list[str] = []
        last_new: list[str] = []
        n_search = rng.choices(range(len(cfg.search_count_probs)), weights=cfg.search_count_probs)[
            0
        ]
        thought = self._thought(rng, FIRST_THOUGHTS, "I need to find", question_words)
        for i in range(n_search):
            from_question = i == 0 or not result_words or rng.random() < cfg.question_query_prob
            source = question_words if from_question else result_words
            if not from_question and self._fresh:
                source = [n for n in result_words if n not in t.queries] or result_words
            query = random_span(rng, source, self._lengths)
            t.queries.append(query)
            t.add([*thought, (" <search> ", False), (query, True), (" </search>", False)], True)
            hits = self.retriever.search([query], self.topk)[0]
            result = self.render_result(hits)
            t.add([(result, False)], False)
            block = untagged(result)
            if self._last_new:  # result_words still holds what was read before this block
                seen = set(result_words) | set(question_words)
                block_names = self._pool(block)
                last_new = [n for n in block_names if n not in seen] or block_names
            read += block
            result_words = self._pool(read)  # names: each distinct name once, however often read
            # The inserted block ends in a newline, so the model's next turn starts right at a tag.
            phrases = NEXT_THOUGHTS if i + 1 < n_search else FINAL_THOUGHTS
            thought = self._thought(rng, phrases, "I found", result_words)
        pool = last_new if self._last_new else result_words
        t.answer = random_span(rng, pool or result_words or question_words, self._lengths)
        # Generation stops at </answer>, so nothing follows it (no end-of-sequence token either).
        answer = [
            (" <answer> The final answer is \\boxed{ ", False),
            (t.answer, True),
            (" } </answer>", False),
        ]
        t.add([*thought, *answer], True)
        return t

    def _thought(
        self, rng: random.Random, phrases: Sequence[str], lead: str, source: list[str]
    ) -> list[tuple[str, bool]]:
        """``<think> … </think>`` as parts: a fixed phrase, or ``lead`` and a quoted span."""
        if self.cfg.quote_in_thoughts and source and rng.random() < 0.5:
            span = random_span(rng, source, self._lengths)
            return [(f"<think> {lead} ", False), (span, True), (". </think>", False)]
        return [(f"<think> {rng.choice(phrases[: self.cfg.thought_variants])} </think>", False)]


def encode_transcript(
    tokenizer, t: Transcript, loss_on_results: bool = False, choice_weight: float = 1.0
) -> tuple[list[int], list[float]]:
    """(ids, loss weights): each piece tokenised on its own, as the rollout engine does. Weight 0 on
    the prompt and the inserted results (unless ``loss_on_results``), ``choice_weight`` on tokens of
    a random choice, 1 on the rest of the model's text."""
    ids = tokenizer(t.prompt, add_special_tokens=False)["input_ids"]
    weights = [0.0] * len(ids)
    for (text, by_model), ranges in zip(t.segments, t.choices, strict=True):
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        ids += enc["input_ids"]
        base = 1.0 if by_model or loss_on_results else 0.0
        for a, b in enc["offset_mapping"]:
            chosen = by_model and any(a < end and b > start for start, end in ranges)
            weights.append(choice_weight if chosen else base)
    return ids, weights


def encode_passage(tokenizer, p: Passage) -> tuple[list[int], list[float]]:
    ids = tokenizer(p.contents, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    return ids, [1.0] * len(ids)


def format_train(
    model,
    tokenizer,
    sampler: TranscriptSampler,
    questions: Sequence[Question],
    passages: Sequence[Passage],
    cfg: FormatTrainingConfig,
    on_step: Callable[[int, float], None] | None = None,
    copy_cfg: CopyTrainingConfig | None = None,
) -> list[float]:
    """Train ``model`` in place on random transcripts of ``questions``, on ``passages`` and on copy
    rows shaped by ``copy_cfg`` (the copy stage's own); returns the loss per step.
    ``on_step(step, loss)`` reports progress."""
    import torch

    if not questions:
        raise ValueError("format_train: no training questions")
    rng = random.Random(cfg.seed)
    torch.manual_seed(cfg.seed)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    sched = cosine_schedule(opt, cfg.steps, cfg.warmup_steps, floor=0.1)
    n_corpus = round(cfg.batch_size * cfg.corpus_fraction) if passages else 0
    vocab = world_words(passages) if cfg.copy_rows else []
    copy_words = (copy_cfg or CopyTrainingConfig()).words_per_row
    losses: list[float] = []
    for step in range(cfg.steps):
        rows = [
            encode_transcript(
                tokenizer,
                sampler.sample(rng.choice(questions), rng),
                cfg.loss_on_results,
                cfg.choice_weight,
            )
            for _ in range(cfg.batch_size - n_corpus)
        ]
        rows += [encode_passage(tokenizer, rng.choice(passages)) for _ in range(n_corpus)]
        if vocab:
            rows += [copy_row(tokenizer, rng, vocab, copy_words) for _ in range(cfg.copy_rows)]
        losses.append(lm_step(model, opt, rows, tokenizer.pad_token_id))
        sched.step()
        if on_step is not None:
            on_step(step, losses[-1])
    model.eval()
    return losses
