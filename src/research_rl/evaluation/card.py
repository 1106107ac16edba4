"""The protocol card: everything that produced a number, written beside every table.

A card (``card.json``) has four parts:

- ``protocol``: what decides the numbers, apart from the model: datasets (split, question count,
  hashes of the question ids and contents), corpus (passages, checksum), retriever (kind, encoder,
  prefixes, index type and parameters), top-k, the rollout settings (profile, template hash, stop
  strings, search limit, budgets), baseline prompt hashes, sampling and seeds, the answer
  extraction rule, the metric version and the judge (model, prompt hash, token budget). Two
  results can share a table only when their protocols agree (:func:`differences`);
- ``subject``: what is being evaluated (model path and revision, backend, methods);
- ``audit``: the contamination audit given with ``audit:`` (its path, hash and report), if any;
- ``provenance``: where things were on this machine (paths, URLs), the research-rl version, the
  replayed store: recorded, never compared.

Sections keyed by dataset or method (``datasets``, ``prompts``, ``answer_extraction``) are compared
only on the datasets and methods both results have, so a run on four datasets and one on two of
them can share a table for those two.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx

from research_rl import __version__
from research_rl.config import ConfigError
from research_rl.evaluation.metrics import PLAIN_TEXT_METHODS
from research_rl.evaluation.presets import PRESETS
from research_rl.questions import Question
from research_rl.rollout import RolloutConfig
from research_rl.run_dir import CARD, write_json_atomic

CARD_FILE = CARD
CARD_VERSION = 1
# Bump when research_rl.reward's answer normalisation, EM or F1, or cover-EM change meaning.
METRIC_VERSION = "em-f1-cover_em/normalize_answer-v1"
METRICS = ("em", "f1", "cover_em", "judge", "valid_format")
# Sections whose keys are datasets or methods: compared on the keys both cards have.
PER_ITEM_SECTIONS = ("datasets", "prompts", "answer_extraction")
# Rollout settings that change only how rollouts are scheduled, never what they produce.
SCHEDULING_ONLY = ("chunk_tokens",)
# Paths are replaced by the hashes of what they hold (the template text is hashed).
PATH_KEYS = ("template_path", "system_prompt_path")

# What the prediction is, per protocol profile (task A's profiles; the strict one is today's).
ANSWER_RULES = {
    "strict": "last \\boxed{} in <answer> (in the whole response when there is no <answer>)",
    "research": "last \\boxed{} in a closed <answer>; none when the response was truncated",
}


class ProtocolMismatchError(ConfigError):
    """Results evaluated under different protocols, put together without being told to."""


def where(path: str | None) -> str | None:
    """A path as the card records it: absolute when it exists here, else as written (a hub
    name, a URL)."""
    if path is None:
        return None
    p = Path(path)
    return str(p.resolve()) if p.exists() else path


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def sha256_json(value: Any) -> str:
    return sha256_text(json.dumps(value, sort_keys=True, ensure_ascii=False))


def rollout_profile(rollout: RolloutConfig) -> str:
    return rollout.profile


def answer_extraction_rule(rollout: RolloutConfig, method: str) -> str:
    """The one place that names how a method's prediction is read from its response."""
    profile = rollout_profile(rollout)
    rule = ANSWER_RULES.get(profile, f"profile {profile!r}")
    if method in PLAIN_TEXT_METHODS:
        rule += "; else plain text: boxed anywhere, the <answer> span, the last line"
    return rule


def dataset_section(questions: Sequence[Question]) -> dict[str, Any]:
    """A dataset as evaluated: its source and split (from `research data prepare`'s metadata),
    the question count and hashes of the ids and of the questions with their answers."""

    def one(key: str) -> Any:
        values = {q.metadata.get(key) for q in questions}
        return values.pop() if len(values) == 1 else ("mixed" if values else None)

    return {
        "source": one("dataset"),
        "split": one("split"),
        "questions": len(questions),
        "ids_sha256": sha256_json([q.id for q in questions]),
        "content_sha256": sha256_json([[q.id, q.question, q.golden_answers] for q in questions]),
    }


def _manifest(index_dir: Path) -> dict[str, Any]:
    """The index's manifest as raw JSON: read field by field, whatever its version holds."""
    try:
        data = json.loads((index_dir / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _health(url: str) -> dict[str, Any]:
    """What a `research serve` answers on /health (kind, num_docs, encoder, maybe a manifest)."""

    base = url.rstrip("/").removesuffix("/retrieve")
    try:
        data = httpx.get(base + "/health", timeout=5.0).json()
    except (httpx.HTTPError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    manifest = data.get("manifest")
    return {**data, **manifest} if isinstance(manifest, dict) else data


def retrieval_section(index: str | None = None, url: str | None = None) -> dict[str, Any]:
    """The retriever and corpus behind an index directory or a retrieval server, as far as its
    manifest (or the server's /health) tells: ``{"retriever": ..., "corpus": ..., "where": ...}``.
    Unknown fields are None; a field a newer manifest adds is carded under ``index_params``."""
    m = _manifest(Path(index)) if index else _health(url) if url else {}
    options = m.get("options") if isinstance(m.get("options"), dict) else {}

    def pick(*keys: str) -> Any:
        for key in keys:
            for source in (m, options):
                if source.get(key) is not None:
                    return source[key]
        return None

    known = {"faiss", "faiss_type", "index_type", "query_prefix", "passage_prefix", "pooling"}
    kind = m.get("kind")
    return {
        "retriever": {
            "kind": kind,
            "encoder": m.get("encoder"),
            "query_prefix": pick("query_prefix"),
            "passage_prefix": pick("passage_prefix"),
            "pooling": pick("pooling"),
            "index_type": "bm25" if kind == "bm25" else pick("index_type", "faiss_type", "faiss"),
            "index_params": {k: v for k, v in sorted(options.items()) if k not in known},
        },
        "corpus": {
            "passages": m.get("num_docs"),
            "checksum": m.get("corpus_checksum"),
            "size": pick("corpus_size", "corpus_bytes"),
        },
        "where": {
            "index": where(index),
            "url": url,
            "corpus": m.get("corpus_source") or m.get("corpus_path"),
        },
    }


def _sampled_digest(path: Path) -> str:
    """A file's size and 16 blocks of 64 KiB spread over it: tells checkpoints apart (their
    weights differ everywhere) without reading gigabytes."""
    size = path.stat().st_size
    h = hashlib.sha256(str(size).encode())
    block = 1 << 16
    with path.open("rb") as f:
        for i in range(16):
            f.seek(max(0, (size - block) * i // 15))
            h.update(f.read(block))
    return h.hexdigest()


def model_revision(path: str) -> str | None:
    """The model's revision: the hub commit of a cached snapshot, or for a local directory
    ``local:`` and a digest of its files (names, sizes and sampled contents)."""
    p = Path(path)
    if p.is_dir():
        if p.parent.name == "snapshots":
            return p.name
        h = hashlib.sha256()
        for f in sorted(x for x in p.rglob("*") if x.is_file()):
            h.update(f.relative_to(p).as_posix().encode() + b"\0")
            h.update(_sampled_digest(f).encode())
        return "local:" + h.hexdigest()[:16]
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(path, "config.json")
    except Exception:  # an invalid repo id, no cache: the revision is unknown, not an error
        return None
    return Path(cached).parent.name if isinstance(cached, str) else None


def _audit_section(path: str | None) -> dict[str, Any] | None:
    if path is None:
        return None
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"audit: {p}: audit report not found (write it with research data audit)")
    text = p.read_text(encoding="utf-8")
    try:
        report = json.loads(text)
    except ValueError as err:
        raise ConfigError(f"audit: {p}: not a JSON audit report ({err})") from None
    return {"path": where(str(p)), "sha256": sha256_text(text), "report": report}


def template_sha256(rollout: RolloutConfig) -> str:
    """The research method's prompt, as loaded (built-in or the user's file), hashed."""
    template = rollout.load_template()
    return sha256_json([template.kind, template.text, template.system])


def _rollout_section(rollout: RolloutConfig) -> dict[str, Any]:
    settings = {
        k: v
        for k, v in rollout.model_dump(mode="json").items()
        if k not in SCHEDULING_ONLY + PATH_KEYS + ("topk",)
    }
    return {
        "profile": rollout_profile(rollout),
        **settings,
        "template_sha256": template_sha256(rollout),
        "stop": list(rollout.effective().stop_strings),
    }


def build_card(
    *,
    datasets: Mapping[str, Sequence[Question]],
    methods: Sequence[str],
    rollout: RolloutConfig,
    retrieval: Mapping[str, Any] | None,
    prompts: Mapping[str, str],
    sampling: Mapping[str, Any],
    seeds: int,
    judge: Mapping[str, Any] | None,
    model: Mapping[str, Any],
    preset: str | None = None,
    audit: str | None = None,
    stats: Mapping[str, Any] | None = None,
    provenance: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A card from its parts (:func:`eval_card` and :func:`validation_card` gather them)."""
    retrieval = retrieval or {}
    rule = {m: answer_extraction_rule(rollout, m) for m in methods}
    protocol = {
        "preset": preset,
        "datasets": {name: dataset_section(qs) for name, qs in datasets.items()},
        "corpus": retrieval.get("corpus"),
        "retriever": retrieval.get("retriever"),
        "topk": rollout.topk,
        "rollout": _rollout_section(rollout),
        "prompts": dict(prompts),
        "sampling": dict(sampling),
        "seeds": seeds,
        "answer_extraction": rule,
        "metrics": {"names": list(METRICS), "version": METRIC_VERSION},
        "judge": dict(judge) if judge is not None else None,
    }
    return {
        "card_version": CARD_VERSION,
        "protocol": protocol,
        "subject": {"model": dict(model), "methods": list(methods)},
        "audit": _audit_section(audit),
        "stats": dict(stats) if stats is not None else None,
        "provenance": {
            "research_rl": __version__,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "retrieval": retrieval.get("where"),
            **(provenance or {}),
        },
    }


def eval_card(
    cfg: Any,
    questions: Mapping[str, Sequence[Question]],
    retrieval: Mapping[str, Any] | None,
    replayed_from: str | None = None,
) -> dict[str, Any]:
    """The card of a ``research eval`` run (``cfg`` an :class:`EvalConfig`)."""

    kind = cfg.rollout.template
    texts = {
        "direct": cfg.prompts.direct_base if kind == "base" else cfg.prompts.direct_instruct,
        "rag": cfg.prompts.rag_base if kind == "base" else cfg.prompts.rag_instruct,
    }
    prompts = {m: sha256_text(texts[m]) for m in cfg.methods if m in texts}
    if "research" in cfg.methods:
        prompts["research"] = template_sha256(cfg.rollout)
    judge = None
    if cfg.judge is not None:
        judge = {
            "model": cfg.judge.model,
            "preset": cfg.judge.preset if cfg.judge.prompt is None else None,
            "prompt_sha256": sha256_text(cfg.judge.prompt_text),
            "max_tokens": cfg.judge.max_tokens,
        }
    m = cfg.model
    card = build_card(
        datasets=questions,
        methods=cfg.methods,
        rollout=cfg.rollout,
        retrieval=retrieval,
        prompts=prompts,
        sampling=cfg.sampling.model_dump(mode="json"),
        seeds=cfg.seeds,
        judge=judge,
        model={
            "path": where(m.path),
            "revision": model_revision(m.path),
            "backend": m.backend,
            "served_name": m.name,
            "dtype": m.dtype,
        },
        preset=cfg.preset,
        audit=cfg.audit,
        stats=cfg.stats.model_dump(mode="json"),
        provenance={
            "datasets": {d.name: where(d.path) for d in cfg.datasets},
            "model_url": m.url,
            "judge_url": cfg.judge.url if cfg.judge is not None else None,
            "replayed_from": replayed_from,
        },
    )
    if cfg.preset is not None:
        card["protocol"]["preset_trained_on"] = PRESETS[cfg.preset].trained_on
    return card


def validation_card(
    cfg: Any,
    questions: Sequence[Question],
    retrieval: Mapping[str, Any] | None = None,
    replayed_from: str | None = None,
) -> dict[str, Any]:
    """The card of a training run's validation passes (``cfg`` a ``TrainConfig``): greedy
    rollouts of the policy on the validation questions, scored by the rule reward's metrics.
    ``retrieval``: the retrieval section when known (a replay's comes from its store)."""
    r = cfg.retriever
    return build_card(
        datasets={"validation": questions},
        methods=["research"],
        rollout=cfg.rollout,
        retrieval=retrieval if retrieval is not None else retrieval_section(r.index, r.url),
        prompts={"research": template_sha256(cfg.rollout)},
        sampling={"temperature": 0.0, "top_p": 1.0, "top_k": 0, "seed": None},
        seeds=1,
        judge=None,
        model={
            "path": where(cfg.model.path),
            "revision": "the policy at each validation step (rollouts/val/step_N.jsonl)",
            "backend": cfg.generation.backend,
        },
        provenance={
            "datasets": {"validation": where(cfg.data.validation)},
            "replayed_from": replayed_from,
        },
    )


def write_card(path: str | Path, card: Mapping[str, Any]) -> Path:
    path = Path(path)
    write_json_atomic(path, card)
    return path


def read_card(run_dir: str | Path) -> dict[str, Any] | None:
    """The card of a run directory (``card.json``), None when it has none (an older run)."""
    path = Path(run_dir) / CARD_FILE
    if not path.is_file():
        return None
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as err:
        raise ConfigError(f"{path}: not a protocol card ({err})") from None
    if not isinstance(card, dict) or not isinstance(card.get("protocol"), dict):
        raise ConfigError(f"{path}: not a protocol card (no 'protocol' section)")
    return card


# -- comparing cards ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Difference:
    key: str  # dotted, within the protocol: "topk", "retriever.encoder", "datasets.nq.split"
    values: tuple[Any, ...]  # one per card, in order

    def __str__(self) -> str:
        return f"{self.key} ({' vs '.join(json.dumps(v) for v in self.values)})"


def _flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, dict) and node:
        out: dict[str, Any] = {}
        for k, v in node.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix.rstrip("."): node}


def _shared_protocols(
    protocols: Sequence[Mapping[str, Any]], ignore: Iterable[str]
) -> list[dict[str, Any]]:
    """Each protocol with the per-item sections cut to the items every protocol has."""
    skipped = set(ignore)
    out = []
    for p in protocols:
        q = {k: v for k, v in p.items() if k not in skipped}
        for section in PER_ITEM_SECTIONS:
            if section in skipped:
                continue
            shared = set.intersection(*(set((x.get(section) or {}).keys()) for x in protocols))
            q[section] = {k: v for k, v in (p.get(section) or {}).items() if k in shared}
        out.append(q)
    return out


def differences(
    cards: Sequence[Mapping[str, Any] | None], ignore: Iterable[str] = ()
) -> list[Difference]:
    """The protocol fields on which ``cards`` disagree (a missing card disagrees with any other
    on the key ``card``). ``ignore``: top-level protocol sections left out."""
    if len(cards) < 2:
        return []
    if any(c is None for c in cards):
        if all(c is None for c in cards):
            return []
        return [Difference("card", tuple("present" if c else "missing" for c in cards))]
    protocols = _shared_protocols([c["protocol"] for c in cards if c is not None], ignore)
    flat = [_flatten(p) for p in protocols]
    keys = list(dict.fromkeys(k for f in flat for k in f))
    out = []
    for key in keys:
        values = tuple(f.get(key) for f in flat)
        if any(v != values[0] for v in values[1:]):
            out.append(Difference(key, values))
    return out


def require_same_protocol(
    cards: Sequence[Mapping[str, Any] | None], names: Sequence[str], allow_different: bool
) -> list[Difference]:
    """The differences between ``cards``; raises :class:`ProtocolMismatchError` naming each one
    unless ``allow_different`` (then the caller shows them beside the table)."""
    found = differences(cards)
    if found and not allow_different:
        listed = "; ".join(str(d) for d in found)
        raise ProtocolMismatchError(
            f"{', '.join(names)} were evaluated under different protocols, so their numbers do not "
            f"belong in one table: {listed}. Pass --allow-different to tabulate them anyway"
        )
    return found
