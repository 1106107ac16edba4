"""Question text compared across files: the answer normalisation, symbols dropped as well.

:func:`research_rl.reward.normalize_answer` (lower case, no ASCII punctuation, no articles) plus
dropping every non-word character, so that a curly quote, or the ``?€?`` that Bamboogle's CSV
release has in its place, does not make the same question two questions.
"""

from __future__ import annotations

import hashlib
import re

from research_rl.reward import normalize_answer

_WORD = re.compile(r"\w+")

# Function words, left out when judging whether two questions ask about the same thing: "when was
# X born" and "when was Y born" share most of their words but none of their content.
_FUNCTION_WORDS = frozenset(
    str.split(
        """what which who whom whose when where why how is are was were be been being am do does did
    has have had of in on at to for from by with as into about than that this these those it its
    and or but not no nor if then there their they he she his her him i you we our your my me us
    can could will would shall should may might must s"""
    )
)


def question_key(text: str) -> str:
    """The normalised words of a question, space-joined."""
    return " ".join(_WORD.findall(normalize_answer(text)))


def question_digest(text: str) -> str:
    """A short stable digest of :func:`question_key` (to map ids without shipping the text)."""
    return hashlib.sha1(question_key(text).encode("utf-8")).hexdigest()[:16]


def content_words(text: str) -> frozenset[str]:
    """The question's normalised words without function words."""
    return frozenset(w for w in question_key(text).split() if w not in _FUNCTION_WORDS)
