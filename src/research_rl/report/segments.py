"""Rollout text as display segments, on top of the core's tag parser (research_rl.tags)."""

from __future__ import annotations

from research_rl import tags


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


def inserted(segs: list[tags.Segment]) -> list[bool]:
    """Per segment: whether it is a ``<result>`` the system inserted (masked out of the loss).
    Generation stops at ``</search>`` and the engine appends the result right there, so an
    inserted result directly follows a closed search (blank text between aside); a ``<result>``
    anywhere else was written by the model itself, is trained on, and is not evidence."""
    out = []
    previous: tags.Segment | None = None
    for seg in segs:
        out.append(
            seg.kind == "result"
            and previous is not None
            and previous.kind == "search"
            and previous.closed
        )
        if seg.kind != "other" or seg.content.strip():
            previous = seg
    return out
