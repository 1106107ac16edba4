"""The two evaluation protocols papers in the field report, as named presets.

A config that names a preset (``preset: research``) must match it: what the config says is checked
before the model is loaded, which datasets and splits its question files hold when the run starts.
Each mismatch is named, so a number printed under a preset's name was produced under that protocol.

- ``research``: ReSearch (arXiv 2503.19470): models trained on MuSiQue, evaluated with top-5
  passages, greedy decoding, on the HotpotQA, 2WikiMultiHopQA and MuSiQue dev sets and the Bamboogle
  test set, with exact match and an LLM judge.
- ``search-r1``: Search-R1 (arXiv 2503.09516): top-3 passages, greedy decoding, seven sets (the NQ,
  TriviaQA, PopQA and Bamboogle test sets, the HotpotQA, 2WikiMultiHopQA and MuSiQue dev sets),
  exact match.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from research_rl.config import ConfigError

if TYPE_CHECKING:
    from research_rl.evaluation.config import EvalConfig


@dataclass(frozen=True)
class Preset:
    name: str
    paper: str
    topk: int
    datasets: tuple[tuple[str, str], ...]  # (dataset, split), as `research data prepare` names them
    judge: bool  # the LLM judge is one of the protocol's metrics
    metrics: tuple[str, ...]
    trained_on: str  # what the paper's models were trained on (recorded on the card)


PRESETS: dict[str, Preset] = {
    "research": Preset(
        name="research",
        paper="ReSearch, arXiv 2503.19470",
        topk=5,
        datasets=(
            ("hotpotqa", "dev"),
            ("2wikimultihopqa", "dev"),
            ("musique", "dev"),
            ("bamboogle", "test"),
        ),
        judge=True,
        metrics=("em", "judge"),
        trained_on="musique train",
    ),
    "search-r1": Preset(
        name="search-r1",
        paper="Search-R1, arXiv 2503.09516",
        topk=3,
        datasets=(
            ("nq", "test"),
            ("triviaqa", "test"),
            ("popqa", "test"),
            ("hotpotqa", "dev"),
            ("2wikimultihopqa", "dev"),
            ("musique", "dev"),
            ("bamboogle", "test"),
        ),
        judge=False,
        metrics=("em",),
        trained_on="nq + hotpotqa train",
    ),
}


def config_deviations(cfg: EvalConfig) -> list[str]:
    """What in the config itself differs from its preset."""
    preset = PRESETS[cfg.preset] if cfg.preset else None
    if preset is None:
        return []
    why = f"preset '{preset.name}' ({preset.paper})"
    out = []
    if cfg.rollout.topk != preset.topk:
        out.append(f"{why} retrieves top-{preset.topk}: rollout.topk is {cfg.rollout.topk}")
    if cfg.sampling.temperature != 0 or cfg.seeds != 1:
        out.append(f"{why} decodes greedily once: set sampling.temperature 0 and seeds 1")
    if preset.judge and cfg.judge is None:
        out.append(f"{why} reports LLM-judge accuracy: add a 'judge' section")
    if cfg.limit is not None:
        out.append(f"{why} evaluates every question: limit is {cfg.limit} (drop it or the preset)")
    return out


def check_preset(cfg: EvalConfig, datasets: Mapping[str, Mapping[str, Any]] | None = None) -> None:
    """Raise a :class:`ConfigError` naming every way ``cfg`` (and, when given, the card's
    ``datasets`` section) differs from its preset; nothing without a preset."""
    if cfg.preset is None:
        return
    wrong = config_deviations(cfg)
    if datasets is not None:
        wrong += dataset_deviations(cfg.preset, datasets)
    if wrong:
        raise ConfigError("; ".join(wrong))


def dataset_deviations(preset_name: str, datasets: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """What the run's question files hold that differs from the preset: ``datasets`` is the card's
    section (config name -> ``source`` and ``split`` read from the questions' metadata)."""
    preset = PRESETS[preset_name]
    found = {(d.get("source"), d.get("split")): name for name, d in datasets.items()}
    out = []
    for source, split in preset.datasets:
        if (source, split) not in found:
            out.append(f"preset '{preset.name}' evaluates {source} {split}: no dataset holds it")
    wanted = set(preset.datasets)
    for (source, split), name in found.items():
        if (source, split) not in wanted:
            out.append(
                f"preset '{preset.name}' has no {source} {split} (dataset '{name}'; the dataset "
                "and split come from the question metadata `research data prepare` writes)"
            )
    return out
