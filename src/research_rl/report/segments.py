"""Rollout text as display segments, on top of the core's tag parser (research_rl.tags)."""

from __future__ import annotations

from research_rl import tags

# Model-written kinds: everything but the system-inserted <result> spans (loss_mask = 0).
MODEL_KINDS = frozenset({"think", "search", "answer", "other"})


def segments(text: str) -> list[tags.Segment]:
    """``tags.parse_segments``, plus one repair: a completion whose prompt ended in an opening tag
    (``…<think>``) starts inside that span, so its first tag is a closing one; that leading text
    belongs to the span, not to ``other``."""
    found = tags.find_tags(text)
    if not found or not found[0].closing:
        return tags.parse_segments(text)
    opener = f"<{found[0].name}>"
    shift = len(opener)
    out = []
    for i, seg in enumerate(tags.parse_segments(opener + text)):
        start = 0 if i == 0 else seg.start - shift
        out.append(tags.Segment(seg.kind, seg.content, start, seg.end - shift, seg.closed))
    return out
