"""The word tokenizer BM25 indexes and queries share: lowercase words, English stopwords dropped.

No stemming, so tokens stay readable and the tokenizer has no dependency beyond the stdlib.
"""

from __future__ import annotations

import re

from bm25s.stopwords import STOPWORDS_EN

_WORD = re.compile(r"\w+", re.UNICODE)
STOPWORDS: frozenset[str] = frozenset(STOPWORDS_EN)


def tokenize(text: str) -> list[str]:
    return [w for w in _WORD.findall(text.lower()) if w not in STOPWORDS]
