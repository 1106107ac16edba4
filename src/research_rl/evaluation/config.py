"""The ``research eval`` config: model and backend, retriever, datasets, methods, judge, outputs."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from research_rl.backends.settings import BackendSettings as ModelSettings
from research_rl.config import StrictModel, resolve_path
from research_rl.retrieval.config import RetrieverConfig
from research_rl.rollout import RolloutConfig

Method = Literal["research", "direct", "rag"]
PresetName = Literal["research", "search-r1"]
SEED_STRIDE = 1000  # seed k of --seeds: sampling.seed + 1000 k (the engine adds 1 per turn)

# The terse preset: one word back (research-rl's earlier judge prompt).
TERSE_JUDGE_PROMPT = """You are grading an answer to a question against the reference answers.
The answer is correct when it means the same as one of the reference answers (other wording,
aliases, abbreviations or extra detail that does not contradict it are fine); otherwise it is
incorrect.

Question: {question}
Reference answers: {golden_answers}
Answer to grade: {prediction}

Reply with exactly one word: correct or incorrect."""

# The research preset: the shape of ReSearch's judge prompt (a rationale first, then the verdict
# in JSON), in our own words.
RESEARCH_JUDGE_PROMPT = """You are given a question, its ground-truth answers (each one of them \
is a correct answer on its own) and a predicted answer. Judge whether the predicted answer \
answers the question correctly, going by the ground-truth answers. Give your reasons first, then \
your judgement: correct or incorrect.

How to judge:
1. The predicted answer need not repeat a ground-truth answer word for word; it must mean the \
same thing, for this question.
2. Matching any one of the ground-truth answers is enough.

question: {question}
ground-truth answers: {golden_answers}
predicted answer: {prediction}

Reply in this JSON format:
{"rationale": "why, in words", "judgement": "correct or incorrect"}"""

JUDGE_PROMPTS = {"research": RESEARCH_JUDGE_PROMPT, "terse": TERSE_JUDGE_PROMPT}

# Baseline prompts. They ask for the same answer format as the ReSearch prompt, so one extraction
# rule (the last \boxed{} of the answer) scores every method. {question} is the question; the RAG
# prompts also have {passages}, the retrieved passages formatted as in a search result.
DIRECT_BASE = """A conversation between User and Assistant. The user asks a question and the \
assistant answers it from its own knowledge. The assistant first thinks about the reasoning \
process inside <think> </think>, then gives the answer inside <answer> </answer>, with the exact \
final answer in \\boxed{}, e.g. <answer> The capital is \\boxed{Paris}. </answer>.
User: {question}
Assistant:"""

DIRECT_INSTRUCT = """Answer the question from your own knowledge. Think inside <think> </think>, \
then give the answer inside <answer> </answer> with the exact final answer in \\boxed{}.

Question: {question}"""

RAG_BASE = """A conversation between User and Assistant. The user asks a question and the \
assistant answers it using the documents given. The assistant first thinks about the reasoning \
process inside <think> </think>, then gives the answer inside <answer> </answer>, with the exact \
final answer in \\boxed{}, e.g. <answer> The capital is \\boxed{Paris}. </answer>.
Documents:
{passages}
User: {question}
Assistant:"""

RAG_INSTRUCT = """Answer the question using the documents below. Think inside <think> </think>, \
then give the answer inside <answer> </answer> with the exact final answer in \\boxed{}.

Documents:
{passages}

Question: {question}"""


class SamplingSettings(StrictModel):
    temperature: float = Field(0.0, ge=0)  # 0 = greedy, the paper's evaluation setting
    top_p: float = Field(1.0, gt=0, le=1)
    top_k: int = Field(0, ge=0)
    seed: int | None = None


class DatasetSettings(StrictModel):
    name: str  # the name in tables and prediction files
    path: str  # question JSONL (made by `research data prepare`)


class PromptSettings(StrictModel):
    """Prompts of the baselines; ``research`` uses the ``rollout`` section's template."""

    direct_base: str = DIRECT_BASE
    direct_instruct: str = DIRECT_INSTRUCT
    rag_base: str = RAG_BASE
    rag_instruct: str = RAG_INSTRUCT


class JudgeSettings(StrictModel):
    """LLM-as-judge over an OpenAI-compatible ``/v1/chat/completions`` endpoint.

    ``preset`` picks a built-in prompt: ``research`` (ReSearch's shape: a rationale, then a JSON
    verdict) or ``terse`` (one word). ``prompt`` replaces it with your own text."""

    url: str  # base URL, e.g. https://api.openai.com/v1 or http://localhost:8001/v1
    model: str
    api_key_env: str | None = None  # environment variable holding the API key, if any
    preset: Literal["research", "terse"] = "research"
    prompt: str | None = None  # your own, with {question}, {golden_answers}, {prediction}
    # Room for a rationale before the verdict (8 tokens cut the research preset's replies).
    max_tokens: int = Field(512, ge=1)
    max_in_flight: int = Field(8, ge=1)
    timeout_s: float = Field(60.0, gt=0)
    max_retries: int = Field(3, ge=0)  # on timeouts, server errors and malformed replies
    backoff_s: float = Field(1.0, ge=0)
    cache: str | None = None  # JSONL verdict cache; None = <output_dir>/judge_cache.jsonl

    @property
    def prompt_text(self) -> str:
        return self.prompt if self.prompt is not None else JUDGE_PROMPTS[self.preset]

    @model_validator(mode="after")
    def _prompt_slots(self) -> JudgeSettings:
        text = self.prompt_text
        missing = [s for s in ("{question}", "{golden_answers}", "{prediction}") if s not in text]
        if missing:
            raise ValueError(f"the judge prompt lacks the slot(s) {', '.join(missing)}")
        return self


class StatsSettings(StrictModel):
    """The intervals in the tables: percentile bootstrap over questions (and seeds), seeded so a
    rerun (or a replay) prints the same bounds."""

    confidence: float = Field(0.95, gt=0, lt=1)
    resamples: int = Field(2000, ge=100)
    seed: int = 0


class EvalConfig(StrictModel):
    # A named protocol (research_rl/evaluation/presets.py): the config must match what the paper
    # evaluated with, or the run is refused naming each difference (presets.check_preset).
    preset: PresetName | None = None
    model: ModelSettings
    datasets: list[DatasetSettings] = Field(min_length=1)
    methods: list[Method] = Field(default_factory=lambda: ["research"], min_length=1)
    retriever: RetrieverConfig | None = None  # needed by research and rag
    rollout: RolloutConfig = Field(default_factory=RolloutConfig)
    sampling: SamplingSettings = Field(default_factory=SamplingSettings)
    prompts: PromptSettings = Field(default_factory=PromptSettings)
    judge: JudgeSettings | None = None
    limit: int | None = Field(None, ge=1)  # the first N questions of each dataset
    output_dir: str = "runs/eval"
    # hf: questions per engine call between checkpoints of the predictions file (the resume
    # unit); None = batch_size. Server backends save every question as it finishes.
    chunk_size: int | None = Field(None, ge=1)
    # Sampled runs per question (seed k samples with sampling.seed + SEED_STRIDE * k); the tables
    # average them and their intervals hold the spread between seeds.
    seeds: int = Field(1, ge=1)
    stats: StatsSettings = Field(default_factory=StatsSettings)
    # Every search is recorded here (None: <output_dir>/retrieval); a store may be shared by runs.
    retrieval_store: str | None = None
    # Answer every search from this recorded store (or a run directory holding one) instead of the
    # retriever, which is then never opened.
    replay: str | None = None
    audit: str | None = None  # a `research data audit` JSON report, recorded on the card

    @model_validator(mode="after")
    def _checks(self) -> EvalConfig:
        if (
            self.retriever is None
            and self.replay is None
            and {"research", "rag"} & set(self.methods)
        ):
            raise ValueError("methods 'research' and 'rag' need a 'retriever' section")
        if self.seeds > 1 and self.sampling.temperature == 0:
            raise ValueError(
                f"seeds: {self.seeds} sampled runs need sampling.temperature > 0 (greedy decoding "
                "answers the same way every time)"
            )
        names = [d.name for d in self.datasets]
        if len(set(names)) != len(names):
            raise ValueError(f"dataset names must be unique, got {names}")
        if len(set(self.methods)) != len(self.methods):
            raise ValueError(f"methods are listed twice: {self.methods}")
        for key, text in self.prompts.model_dump().items():
            slots = ("{question}", "{passages}") if key.startswith("rag") else ("{question}",)
            missing = [s for s in slots if s not in text]
            if missing:
                raise ValueError(f"prompts.{key} lacks the slot(s) {', '.join(missing)}")
        return self

    @property
    def effective_chunk_size(self) -> int:
        return self.chunk_size or self.model.batch_size


def resolve_relative_paths(cfg: EvalConfig, base: Path) -> EvalConfig:
    """Resolve the config's paths with :func:`research_rl.config.resolve_path`."""

    def fix(value: str | None) -> str | None:
        return resolve_path(value, base)

    cfg = cfg.model_copy(deep=True)
    cfg.model.path = fix(cfg.model.path) or cfg.model.path
    for d in cfg.datasets:
        d.path = fix(d.path) or d.path
    cfg.rollout.template_path = fix(cfg.rollout.template_path)
    cfg.rollout.system_prompt_path = fix(cfg.rollout.system_prompt_path)
    if cfg.retriever is not None and cfg.retriever.index is not None:
        cfg.retriever.index = fix(cfg.retriever.index)
    cfg.audit = fix(cfg.audit)
    cfg.replay = fix(cfg.replay)
    cfg.retrieval_store = fix(cfg.retrieval_store)
    return cfg
