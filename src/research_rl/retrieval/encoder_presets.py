"""How the common retrieval encoders expect to be called: pooling, prefixes and normalisation.

An index built by another project is only usable with the same choices its builder made. These
are the ones FlashRAG and Search-R1 make for the encoder families they name (a preset is picked by
the family's name appearing in the encoder's name, as they do): E5 mean-pools and prefixes
"query: " / "passage: ", BGE takes the [CLS] vector and an instruction before queries only,
Contriever mean-pools without prefixes, and DPR takes [CLS] and is the one family whose embeddings
are not normalised (its inner products are trained as they are).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Pooling = Literal["mean", "cls"]
POOLINGS: tuple[str, ...] = ("mean", "cls")


@dataclass(frozen=True)
class EncoderPreset:
    pooling: Pooling
    query_prefix: str = ""
    passage_prefix: str = ""
    normalize: bool = True


BGE_INSTRUCTION = "Represent this sentence for searching relevant passages: "

PRESETS: dict[str, EncoderPreset] = {
    "e5": EncoderPreset("mean", "query: ", "passage: "),
    "bge": EncoderPreset("cls", BGE_INSTRUCTION),
    "contriever": EncoderPreset("mean"),
    # DPR's question and passage encoders are two models; the one given is the query encoder.
    "dpr": EncoderPreset("cls", normalize=False),
}


def preset_named(name: str) -> EncoderPreset:
    try:
        return PRESETS[name.lower()]
    except KeyError:
        raise ValueError(
            f"unknown encoder preset {name!r}; choose one of {', '.join(PRESETS)}"
        ) from None


def guess_preset(encoder: str) -> str | None:
    """The preset whose family name appears in ``encoder`` (``intfloat/e5-base-v2`` -> e5)."""
    # The last path component only: a local directory's parents say nothing about the model.
    lowered = encoder.rstrip("/").rsplit("/", 1)[-1].lower()
    return next((name for name in PRESETS if name in lowered), None)


@dataclass(frozen=True)
class EncoderSettings:
    """What an index records about its encoder; ``pooling`` None keeps the model's own."""

    pooling: Pooling | None
    query_prefix: str
    passage_prefix: str
    normalize: bool
    preset: str | None


def resolve_settings(
    encoder: str,
    preset: str | None = None,
    pooling: str | None = None,
    query_prefix: str | None = None,
    passage_prefix: str | None = None,
) -> EncoderSettings:
    """Explicit options win over the preset (named, or guessed from the encoder's name); without
    either, the model's own pooling, no prefixes and normalised embeddings (cosine)."""
    if pooling is not None and pooling not in POOLINGS:
        raise ValueError(f"unknown pooling {pooling!r}; choose one of {', '.join(POOLINGS)}")
    name = preset.lower() if preset is not None else guess_preset(encoder)
    base = preset_named(name) if name is not None else EncoderPreset(None)  # type: ignore[arg-type]
    return EncoderSettings(
        pooling=pooling or base.pooling,  # type: ignore[arg-type]
        query_prefix=base.query_prefix if query_prefix is None else query_prefix,
        passage_prefix=base.passage_prefix if passage_prefix is None else passage_prefix,
        normalize=base.normalize,
        preset=name,
    )
