"""Stop-string detection shared by the backends (the rules are in ``backends.base``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def first_stop(text: str, stops: Sequence[str]) -> str | None:
    """The stop string occurring earliest in ``text`` (ties: the longest), or None."""
    best: tuple[int, int, str] | None = None
    for s in stops:
        i = text.find(s) if s else -1
        if i >= 0 and (best is None or (i, -len(s)) < (best[0], best[1])):
            best = (i, -len(s), s)
    return best[2] if best else None


class StopWatcher:
    """Checks, after each new token, whether a request's new tokens now contain a stop string.

    Only a window of the last tokens is decoded: a stop string found now must end in the newest
    token (an earlier one would have stopped the request), and a string of B bytes spans at most B
    tokens, so decoding costs O(window) per token instead of O(length).
    """

    def __init__(self, tokenizer: Any, stops: Sequence[str]) -> None:
        self.tokenizer = tokenizer
        self.stops = [s for s in stops if s]
        self.window = max((len(s.encode("utf-8")) for s in self.stops), default=0) + 2

    def check(self, new_ids: Sequence[int]) -> str | None:
        if not self.stops:
            return None
        tail = self.tokenizer.decode(list(new_ids[-self.window :]), skip_special_tokens=False)
        return first_stop(tail, self.stops)
