"""How far to trust a number: bootstrap intervals over questions (and seeds), and a paired test.

- :func:`bootstrap_interval`: percentile bootstrap of a mean. One run (greedy or one seed): the
  questions are resampled. Several seeds (a ``seeds x questions`` matrix): questions and seeds are
  resampled independently (a two-stage bootstrap), so the interval holds both the question sample's
  spread and the sampling noise between seeds.
- :func:`paired_test`: two runs on the same questions, joined by question id. The difference of the
  means gets a bootstrap interval, and a sign-flip permutation test gives its p-value: under the
  null hypothesis that the runs are exchangeable, each question's difference is as likely to have
  either sign. On 0/1 scores (EM) only the questions the runs disagree on move the statistic, which
  makes it McNemar's exact test in permutation form.

Every function takes a ``seed``: the same inputs give the same interval, byte for byte, so tables
stay reproducible (and identical under ``--replay``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

CONFIDENCE = 0.95
RESAMPLES = 2000
PERMUTATIONS = 10000
SIGNIFICANCE = 0.05
_CHUNK_CELLS = 2_000_000  # resample this many (draw, question) cells at a time: bounded memory


def _matrix(scores: Sequence[float] | Sequence[Sequence[float]] | np.ndarray) -> np.ndarray:
    """Scores as a ``seeds x questions`` float matrix (one row for a single run)."""
    m = np.asarray(scores, dtype=np.float64)
    if m.ndim == 1:
        m = m[None, :]
    if m.ndim != 2:
        raise ValueError(f"scores must be one run or seeds x questions, got shape {m.shape}")
    return m


def _rows_per_chunk(cells_per_row: int) -> int:
    return max(1, _CHUNK_CELLS // max(cells_per_row, 1))


def _replicates(stack: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    """Bootstrap replicates of the mean of each ``seeds x questions`` matrix in ``stack``
    (``k x seeds x questions``), all from the same draws: ``k x resamples``."""
    k, n_seeds, n = stack.shape
    rng = np.random.default_rng(seed)
    out = np.empty((k, resamples))
    step = _rows_per_chunk(n * k)
    for start in range(0, resamples, step):
        b = min(step, resamples - start)
        if n_seeds == 1:
            per_question = np.broadcast_to(stack[:, 0, None, :], (k, b, n))
        else:
            # How often each seed is drawn in each replicate, then each question's mean over them.
            picks = rng.integers(0, n_seeds, size=(b, n_seeds))
            weights = (picks[:, :, None] == np.arange(n_seeds)).sum(axis=1) / n_seeds
            per_question = np.einsum("bs,ksn->kbn", weights, stack)
        questions = rng.integers(0, n, size=(b, n), dtype=np.int32)  # int32: half the draw time
        drawn = np.take_along_axis(per_question, np.broadcast_to(questions, (k, b, n)), axis=2)
        out[:, start : start + b] = drawn.mean(axis=2)
    return out


def bootstrap_means(
    scores: Sequence[float] | Sequence[Sequence[float]] | np.ndarray,
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> np.ndarray:
    """``resamples`` bootstrap replicates of the mean of ``scores`` (see the module docstring)."""
    return _replicates(_matrix(scores)[None], resamples, seed)[0]


def bootstrap_intervals(
    matrices: Sequence[Sequence[float] | Sequence[Sequence[float]] | np.ndarray],
    confidence: float = CONFIDENCE,
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> list[tuple[float, float] | None]:
    """:func:`bootstrap_interval` of several metrics over the same questions (and seeds), from one
    set of draws: the metrics of one table row cost one bootstrap, not one each."""
    stack = [_matrix(m) for m in matrices]
    if not stack:
        return []
    if any(m.shape != stack[0].shape for m in stack):
        raise ValueError("bootstrap_intervals needs matrices of one shape (the same questions)")
    if stack[0].size == 0:
        return [None] * len(stack)
    tail = (1 - confidence) / 2
    bounds = np.quantile(_replicates(np.stack(stack), resamples, seed), [tail, 1 - tail], axis=1)
    return [(float(lo), float(hi)) for lo, hi in bounds.T]


def bootstrap_interval(
    scores: Sequence[float] | Sequence[Sequence[float]] | np.ndarray,
    confidence: float = CONFIDENCE,
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> tuple[float, float] | None:
    """The percentile bootstrap interval of the mean; None without any score."""
    return bootstrap_intervals([scores], confidence, resamples, seed)[0]


@dataclass(frozen=True)
class PairedResult:
    n: int  # questions both runs answered
    mean_a: float
    mean_b: float
    difference: float  # mean_a - mean_b
    interval: tuple[float, float]  # bootstrap interval of the difference
    p_value: float  # two-sided, sign-flip permutation test
    significance: float = SIGNIFICANCE

    @property
    def significant(self) -> bool:
        return self.p_value < self.significance

    def to_json(self) -> dict[str, object]:
        return {
            "n": self.n,
            "a": self.mean_a,
            "b": self.mean_b,
            "difference": self.difference,
            "interval": list(self.interval),
            "p_value": self.p_value,
            "significant": self.significant,
        }


def paired_test(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    confidence: float = CONFIDENCE,
    resamples: int = RESAMPLES,
    permutations: int = PERMUTATIONS,
    seed: int = 0,
    significance: float = SIGNIFICANCE,
) -> PairedResult:
    """Compare two runs' per-question scores, aligned (``a[i]`` and ``b[i]`` are one question;
    with several seeds pass each question's mean over them)."""
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"paired scores must be two equal-length lists, got {x.shape}, {y.shape}")
    n = len(x)
    if n == 0:
        raise ValueError("no question is in both runs: nothing to compare")
    d = x - y
    # Questions both runs score alike flip to the same statistic under any sign: only the others
    # are drawn (with 0/1 scores, the discordant pairs of McNemar's test).
    moved = d[d != 0]
    observed = abs(moved.sum())
    rng = np.random.default_rng(seed)
    at_least = 0
    step = _rows_per_chunk(len(moved))
    for start in range(0, permutations, step):
        k = min(step, permutations - start)
        flipped = rng.integers(0, 2, size=(k, len(moved)), dtype=np.int8).astype(np.float64)
        sums = moved.sum() - 2 * (flipped @ moved)  # the sum with the flipped signs negated
        # A tolerance: flips that reproduce the observed split must count, despite rounding.
        at_least += int(np.sum(np.abs(sums) >= observed - 1e-9))
    interval = bootstrap_interval(d, confidence, resamples, seed)
    assert interval is not None
    return PairedResult(
        n=n,
        mean_a=float(x.mean()),
        mean_b=float(y.mean()),
        difference=float(d.mean()),
        interval=interval,
        p_value=(at_least + 1) / (permutations + 1),
        significance=significance,
    )
