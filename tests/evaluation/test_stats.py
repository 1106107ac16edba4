"""Bootstrap intervals and the paired test, checked against answer rates the fixtures plant."""

import numpy as np
import pytest

from research_rl.evaluation.stats import bootstrap_interval, bootstrap_means, paired_test


def test_interval_covers_the_true_rate_at_the_nominal_frequency():
    """Many evaluations of 300 questions answered right with probability 0.4: the 95% interval
    must hold 0.4 in about 95% of them (a percentile bootstrap runs a little under)."""
    rng = np.random.default_rng(1)
    true_rate, trials = 0.4, 400
    covered = 0
    widths = []
    for t in range(trials):
        scores = (rng.random(300) < true_rate).astype(float)
        lo, hi = bootstrap_interval(scores, resamples=1000, seed=t)
        covered += lo <= true_rate <= hi
        widths.append(hi - lo)
    assert 0.91 <= covered / trials <= 0.98
    # The normal approximation's width, 2 * 1.96 * sqrt(p(1-p)/n), within a few percent.
    assert np.mean(widths) == pytest.approx(2 * 1.96 * np.sqrt(0.4 * 0.6 / 300), rel=0.05)


def test_seeds_widen_the_interval_by_their_own_spread():
    """Seeds that disagree on each question add spread a single run cannot show; seeds that all
    agree give the single run's interval."""
    rng = np.random.default_rng(2)
    base = (rng.random(400) < 0.5).astype(float)
    agreeing = np.stack([base] * 4)
    lo1, hi1 = bootstrap_interval(base, seed=0)
    lo4, hi4 = bootstrap_interval(agreeing, seed=0)
    assert hi4 - lo4 == pytest.approx(hi1 - lo1, rel=0.1)

    # Seeds of a sampled run: every seed's overall rate moves together (a shared offset per seed).
    offsets = np.array([-0.15, 0.15, -0.15, 0.15])
    noisy = (rng.random((4, 400)) < (0.5 + offsets[:, None])).astype(float)
    lo, hi = bootstrap_interval(noisy, seed=0)
    assert hi - lo > 1.3 * (hi1 - lo1)
    assert lo <= noisy.mean() <= hi


def test_intervals_are_reproducible_and_degenerate_cases():
    scores = [1, 0, 1, 1, 0, 0, 1]
    assert bootstrap_interval(scores, seed=5) == bootstrap_interval(scores, seed=5)
    assert bootstrap_interval([1.0] * 9) == (1.0, 1.0)
    assert bootstrap_interval([]) is None
    means = bootstrap_means(scores, resamples=3000, seed=0)
    assert means.shape == (3000,) and means.mean() == pytest.approx(np.mean(scores), abs=0.01)


def test_paired_test_flags_a_planted_difference_and_not_a_null_one():
    rng = np.random.default_rng(3)
    a = (rng.random(500) < 0.45).astype(float)
    # B fixes 12% of A's wrong answers and breaks none: a real, paired improvement of ~6.6 points.
    b = a.copy()
    b[(a == 0) & (rng.random(500) < 0.12)] = 1.0
    planted = paired_test(b, a, seed=0)
    assert planted.significant and planted.p_value < 0.01
    assert planted.difference == pytest.approx(b.mean() - a.mean())
    assert planted.interval[0] > 0

    # A null pair: B breaks and fixes equally many of A's answers at random.
    null = a.copy()
    swap = rng.random(500) < 0.1
    null[swap] = 1.0 - null[swap]
    result = paired_test(null, a, seed=0)
    assert result.interval[0] <= 0 <= result.interval[1] or not result.significant
    identical = paired_test(a, a, seed=0)
    assert identical.p_value == 1.0 and not identical.significant


def test_paired_test_false_positive_rate_is_near_the_level():
    """Under the null (both runs draw from one answer rate), about 5% of comparisons come out
    significant; with a real gap of 15 points on 400 questions (4.3 standard errors), nearly all
    do."""
    rng = np.random.default_rng(4)
    false_pos = power = 0
    trials = 200
    for t in range(trials):
        a = (rng.random(400) < 0.5).astype(float)
        b = (rng.random(400) < 0.5).astype(float)
        false_pos += paired_test(a, b, permutations=1000, resamples=200, seed=t).significant
        c = (rng.random(400) < 0.65).astype(float)
        power += paired_test(c, a, permutations=1000, resamples=200, seed=t).significant
    assert 0.015 <= false_pos / trials <= 0.09
    assert power / trials >= 0.95


def test_paired_test_needs_aligned_scores():
    with pytest.raises(ValueError, match="equal-length"):
        paired_test([1, 0], [1])
    with pytest.raises(ValueError, match="nothing to compare"):
        paired_test([], [])
