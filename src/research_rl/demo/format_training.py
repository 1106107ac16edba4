"""Format training: teach a fresh policy the protocol, and nothing about which answers are right.

A model that has never seen ``<search>`` cannot emit it, so before GRPO the policy is trained as a
causal LM on two kinds of text:

- the corpus passages (plain language modelling: what names and sentences look like);
- protocol transcripts: the rendered prompt of a training question, then a completion in the
  protocol whose every choice is random. Each query is a random span of the content words (not
  stopwords) of the question or of a result retrieved earlier in the transcript; the number of searches is random; the boxed
  answer is a random span of the retrieved results (of the question when nothing was retrieved).
  The gold answer is never consulted, so the transcripts teach *how* to search and answer, never
  *what* to search or which word answers. That is left to the reward.

Transcripts are tokenised segment by segment exactly as the rollout engine builds a rollout (the
prompt, each model segment, each inserted ``<result>`` block), and the inserted results carry no
loss, as in GRPO.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from research_rl import tags
from research_rl.config import StrictModel
from research_rl.corpus import Passage
from research_rl.questions import Question
from research_rl.retrieval.base import Hit, Retriever
from research_rl.retrieval.tokenize import STOPWORDS

_EDGE_PUNCT = re.compile(r"^[^\w]+|[^\w]+$")
# The retriever's stopwords and the question words it keeps (they match nothing in the corpus).
_FUNCTION_WORDS = STOPWORDS | {"where", "who", "which", "what", "when", "how"}

FIRST_THOUGHTS = ("I need to search for this.", "I should look this up.", "Let me search.")
NEXT_THOUGHTS = ("I need more information.", "Let me search again.", "I should search more.")
FINAL_THOUGHTS = ("I can answer now.", "I have the answer.", "I know the answer now.")


class FormatTrainingConfig(StrictModel):
    steps: int = 400
    batch_size: int = 16
    learning_rate: float = 2e-3
    warmup_steps: int = 30
    weight_decay: float = 0.0  # decay would shrink rare names' embeddings between sightings
    corpus_fraction: float = 0.5  # share of each batch that is plain passages
    # Probability of 0, 1, 2, 3 ... searches in a transcript.
    search_count_probs: list[float] = [0.1, 0.35, 0.4, 0.15]
    question_query_prob: float = 0.5  # a later query spans the question (else an earlier result)
    span_length_probs: list[float] = [0.6, 0.3, 0.1]  # spans of 1, 2, 3 words
    # Thoughts quote a random span too ("I need to find <span of the question>", "I found <span
    # of a result>"): more copying practice per transcript, and a scratchpad the policy may use.
    quote_in_thoughts: bool = True
    # Also learn the inserted result blocks (GRPO never does: there they are masked). Their passages
    # repeat each title's name in the text, the cleanest copying practice there is, and without it
    # the random-span targets alone teach a tiny model to copy names far too slowly.
    loss_on_results: bool = True
    seed: int = 0


@dataclass
class Transcript:
    """One random protocol transcript: alternating model-written and inserted segments."""

    prompt: str
    segments: list[tuple[str, bool]] = field(default_factory=list)  # (text, written by the model)
    queries: list[str] = field(default_factory=list)
    answer: str = ""

    @property
    def completion(self) -> str:
        return "".join(text for text, _ in self.segments)


def words(text: str) -> list[str]:
    """The content words of ``text``: whitespace words with punctuation trimmed from their edges,
    stopwords (the retriever's list, plus question words) dropped. A span of stopwords is neither a query the retriever
    can use nor an answer to anything, so spans are drawn from content words only; which content
    words is still left to chance."""
    out = []
    for raw in text.split():
        w = _EDGE_PUNCT.sub("", raw)
        if w and w.lower() not in _FUNCTION_WORDS:
            out.append(w)
    return out


def random_span(rng: random.Random, source: Sequence[str], length_probs: Sequence[float]) -> str:
    """A span of consecutive words, its start uniform over ``source``; its length drawn from
    ``length_probs`` (1, 2, 3 ... words), cut at the end of ``source``."""
    if not source:
        raise ValueError("random_span: empty source")
    length = rng.choices(range(1, len(length_probs) + 1), weights=length_probs)[0]
    start = rng.randrange(len(source))
    return " ".join(source[start : start + length])


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

    def sample(self, question: Question, rng: random.Random) -> Transcript:
        cfg = self.cfg
        t = Transcript(prompt=self.render_prompt(question.question))
        question_words = words(question.question)
        result_words: list[str] = []
        n_search = rng.choices(range(len(cfg.search_count_probs)), weights=cfg.search_count_probs)[0]
        text = f"<think> {self._thought(rng, FIRST_THOUGHTS, 'I need to find', question_words)} </think>"
        for i in range(n_search):
            from_question = i == 0 or not result_words or rng.random() < cfg.question_query_prob
            source = question_words if from_question else result_words
            query = random_span(rng, source, cfg.span_length_probs)
            t.queries.append(query)
            t.segments.append((f"{text} <search> {query} </search>", True))
            hits = self.retriever.search([query], self.topk)[0]
            result = self.render_result(hits)
            t.segments.append((result, False))
            # Spans come from what the model reads (the rendered block), tags left out.
            body = result.replace(tags.RESULT_OPEN, " ").replace(tags.RESULT_CLOSE, " ")
            result_words.extend(words(body))
            thoughts = NEXT_THOUGHTS if i + 1 < n_search else FINAL_THOUGHTS
            # The inserted block ends in a newline, so the model's next turn starts right at a tag.
            text = f"<think> {self._thought(rng, thoughts, 'I found', result_words)} </think>"
        t.answer = random_span(rng, result_words or question_words, cfg.span_length_probs)
        # Generation stops at </answer>, so nothing follows it (no end-of-sequence token either).
        text += f" <answer> The final answer is \\boxed{{ {t.answer} }} </answer>"
        t.segments.append((text, True))
        return t


    def _thought(self, rng: random.Random, phrases: Sequence[str], lead: str, source: list[str]) -> str:
        if self.cfg.quote_in_thoughts and source and rng.random() < 0.5:
            return f"{lead} {random_span(rng, source, self.cfg.span_length_probs)}."
        return rng.choice(phrases)


def encode_transcript(
    tokenizer, t: Transcript, loss_on_results: bool = False
) -> tuple[list[int], list[int]]:
    """(ids, loss mask): each piece tokenised on its own, as the rollout engine does; loss on the
    model-written segments (and on the inserted results if ``loss_on_results``), never the prompt."""
    ids = tokenizer(t.prompt, add_special_tokens=False)["input_ids"]
    mask = [0] * len(ids)
    for text, by_model in t.segments:
        seg = tokenizer(text, add_special_tokens=False)["input_ids"]
        ids += seg
        mask += [int(by_model or loss_on_results)] * len(seg)
    return ids, mask


def encode_passage(tokenizer, p: Passage) -> tuple[list[int], list[int]]:
    ids = tokenizer(p.contents, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    return ids, [1] * len(ids)


def format_train(
    model,
    tokenizer,
    sampler: TranscriptSampler,
    questions: Sequence[Question],
    passages: Sequence[Passage],
    cfg: FormatTrainingConfig,
    on_step: Callable[[int, float], None] | None = None,
) -> list[float]:
    """Train ``model`` in place on random transcripts of ``questions`` and on ``passages``;
    returns the loss per step. ``on_step(step, loss)`` reports progress."""
    import torch

    if not questions:
        raise ValueError("format_train: no training questions")
    rng = random.Random(cfg.seed)
    torch.manual_seed(cfg.seed)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)

    def lr_at(step: int) -> float:
        if step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    n_corpus = round(cfg.batch_size * cfg.corpus_fraction) if passages else 0
    losses: list[float] = []
    for step in range(cfg.steps):
        rows = [encode_transcript(tokenizer, sampler.sample(rng.choice(questions), rng),
                                  cfg.loss_on_results)
                for _ in range(cfg.batch_size - n_corpus)]
        rows += [encode_passage(tokenizer, rng.choice(passages)) for _ in range(n_corpus)]
        input_ids, attention, labels = _collate(rows, tokenizer.pad_token_id)
        out = model(input_ids=input_ids, attention_mask=attention, labels=labels)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(out.loss.item())
        if on_step is not None:
            on_step(step, losses[-1])
    model.eval()
    return losses


def _collate(rows: list[tuple[list[int], list[int]]], pad_id: int):
    import torch

    width = max(len(ids) for ids, _ in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(rows), width), dtype=torch.long)
    labels = torch.full((len(rows), width), -100, dtype=torch.long)
    for i, (ids, mask) in enumerate(rows):
        n = len(ids)
        input_ids[i, :n] = torch.tensor(ids)
        attention[i, :n] = 1
        labels[i, :n] = torch.tensor([t if m else -100 for t, m in zip(ids, mask, strict=True)])
    return input_ids, attention, labels
