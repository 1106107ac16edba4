"""Rollout text as display segments, on top of the core's tag parser (research_rl.tags)."""

from __future__ import annotations

from research_rl import tags

# Model-written kinds: everything but the system-inserted <result> spans (loss_mask = 0).
MODEL_KINDS = frozenset({"think", "search", "answer", "other"})


def _first_tag(text: str) -> tuple[str, bool] | None:
    """(name, closing) of the earliest protocol tag, by plain string search (cheaper than
    scanning every tag: this runs once per rollout)."""
    best: tuple[int, str, bool] | None = None
    for name in tags.TAG_NAMES:
        for closing in (False, True):
            at = text.find(f"</{name}>" if closing else f"<{name}>")
            if at != -1 and (best is None or at < best[0]):
                best = (at, name, closing)
    return None if best is None else (best[1], best[2])


def segments(text: str) -> list[tags.Segment]:
    """``tags.parse_segments``, plus one repair: a completion whose prompt ended in an opening tag
    (``…<think>``) starts inside that span, so its first tag is a closing one; that leading text
    belongs to the span, not to ``other``."""
    first = _first_tag(text)
    if first is None or not first[1]:
        return tags.parse_segments(text)
    opener = f"<{first[0]}>"
    shift = len(opener)
    out = []
    for i, seg in enumerate(tags.parse_segments(opener + text)):
        start = 0 if i == 0 else seg.start - shift
        out.append(tags.Segment(seg.kind, seg.content, start, seg.end - shift, seg.closed))
    return out
