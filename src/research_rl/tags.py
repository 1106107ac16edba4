"""The tag protocol: the markup a ReSearch rollout is written in.

``<think>…</think>`` reasoning, ``<search>…</search>`` a query, ``<result>…</result>`` retrieved
passages (inserted by the system), ``<answer>…</answer>`` the final answer with the exact answer in
``\\boxed{…}``. Everything here works on arbitrary text and never raises: rollouts are sampled from
models that may write anything.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
SEARCH_OPEN, SEARCH_CLOSE = "<search>", "</search>"
RESULT_OPEN, RESULT_CLOSE = "<result>", "</result>"
ANSWER_OPEN, ANSWER_CLOSE = "<answer>", "</answer>"

TAG_NAMES = ("think", "search", "result", "answer")
BOXED = "\\boxed{"


_TAG_RE = re.compile(r"<(/?)(think|search|result|answer)>")

SegmentKind = Literal["think", "search", "result", "answer", "other"]


@dataclass(frozen=True)
class Tag:
    name: str  # one of TAG_NAMES
    closing: bool
    start: int  # character offsets of the tag itself in the source text
    end: int

    @property
    def literal(self) -> str:
        return f"</{self.name}>" if self.closing else f"<{self.name}>"


@dataclass(frozen=True)
class Segment:
    kind: SegmentKind
    content: str  # text between the tags (the whole span for "other")
    start: int  # character offsets of the span in the source, tags included
    end: int
    closed: bool = True  # False for a tagged span cut off by the end of the text


def find_tags(text: str) -> list[Tag]:
    """Every protocol tag in ``text``, in order."""
    return [
        Tag(name=m.group(2), closing=bool(m.group(1)), start=m.start(), end=m.end())
        for m in _TAG_RE.finditer(text)
    ]


def strip_tags(text: str) -> str:
    """``text`` with every protocol tag removed."""
    return _TAG_RE.sub("", text)


def parse_segments(text: str) -> list[Segment]:
    """Split ``text`` into tagged spans and the ``other`` text between them.

    A span opens at ``<name>`` and runs to the next ``</name>``; tags of other names inside it are
    content. A closing tag with no open span, and any text outside spans, is ``other``. An opened
    span that never closes runs to the end of the text with ``closed=False``. Concatenating the
    spans' ``text[start:end]`` gives back the whole text.
    """
    segments: list[Segment] = []
    pos = 0  # start of the text not yet assigned to a segment
    open_tag: Tag | None = None
    for tag in find_tags(text):
        if open_tag is None:
            if tag.closing:
                continue  # stray closing tag: part of the surrounding "other" text
            if tag.start > pos:
                segments.append(Segment("other", text[pos : tag.start], pos, tag.start))
            open_tag, pos = tag, tag.start
        elif tag.closing and tag.name == open_tag.name:
            segments.append(
                Segment(open_tag.name, text[open_tag.end : tag.start], open_tag.start, tag.end)  # type: ignore[arg-type]
            )
            open_tag, pos = None, tag.end
    if open_tag is not None:
        segments.append(
            Segment(open_tag.name, text[open_tag.end :], open_tag.start, len(text), closed=False)  # type: ignore[arg-type]
        )
    elif pos < len(text):
        segments.append(Segment("other", text[pos:], pos, len(text)))
    return segments


def _matching_brace(text: str, open_index: int) -> int | None:
    """Index of the ``}`` closing the ``{`` at ``open_index``, or None if it never closes."""
    depth = 0
    for i in range(open_index, len(text)):
        c = text[i]
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return i
    return None


def boxed_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of the content of every complete ``\\boxed{…}``, braces matched."""
    spans = []
    start = text.find(BOXED)
    while start != -1:
        brace = start + len(BOXED) - 1
        close = _matching_brace(text, brace)
        if close is not None:
            spans.append((brace + 1, close))
        start = text.find(BOXED, start + 1)
    return spans


def last_boxed(text: str) -> str | None:
    """Content of the last complete ``\\boxed{…}`` (nested braces matched), or None."""
    spans = boxed_spans(text)
    if not spans:
        return None
    # The last opened box whose braces close; an inner box inside it is part of its content.
    start, end = max(spans, key=lambda s: s[0])
    outer = [s for s in spans if s[0] < start and s[1] > end]
    if outer:  # the last box is nested in another: the outermost enclosing one is the answer
        start, end = min(outer, key=lambda s: s[0])
    return text[start:end]


def answer_content(text: str) -> str | None:
    """Content of the last ``<answer>`` span (closed or not), or None when there is none."""
    answers = [s for s in parse_segments(text) if s.kind == "answer"]
    return answers[-1].content if answers else None


def last_search_query(text: str) -> str | None:
    """The query of the search that ``text`` ends in: ``text`` runs up to the ``</search>`` that
    stopped generation (with or without it), and the query is everything after the last
    ``<search>``, stripped, wherever that ``<search>`` stands (inside an open ``<think>``, an
    ``<answer>``, after a ``<result>`` the model wrote). None if there is no ``<search>``."""
    if text.endswith(SEARCH_CLOSE):
        text = text[: -len(SEARCH_CLOSE)]
    start = text.rfind(SEARCH_OPEN)
    return None if start == -1 else text[start + len(SEARCH_OPEN) :].strip()


def first_closed_answer(text: str) -> str | None:
    """Content between the first ``<answer>`` and the first ``</answer>`` after it, or None."""
    start = text.find(ANSWER_OPEN)
    if start == -1:
        return None
    end = text.find(ANSWER_CLOSE, start + len(ANSWER_OPEN))
    return None if end == -1 else text[start + len(ANSWER_OPEN) : end]


def rightmost_boxed(text: str) -> str | None:
    """ReSearch's reading of a boxed answer (not :func:`last_boxed`'s):

    - if ``\\boxed `` (a space instead of a brace) occurs anywhere, the text after its last
      occurrence, up to the first ``$``;
    - otherwise the rightmost ``\\boxed``: braces are counted from there, and the first ``}``
      that brings the count back to zero ends the box, which must open with ``\\boxed{``. A box
      nested in another is therefore the inner one, and an unclosed last box reads as nothing
      even when an earlier box is complete.

    None when there is no ``\\boxed`` or the rightmost one cannot be read.
    """
    spaced = "\\boxed "
    if spaced in text:
        return text.rsplit(spaced, 1)[1].split("$", 1)[0]
    start = text.rfind("\\boxed")
    if start == -1:
        return None
    depth = 0
    for i in range(start, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                box = text[start : i + 1]
                return box[len(BOXED) : -1] if box.startswith(BOXED) else None
    return None
