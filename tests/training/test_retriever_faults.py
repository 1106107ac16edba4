"""Retriever faults during training: bounded retries, then the rollout is marked failed, left out
of the loss and of the group statistics, its rate logged; a run whose failed share exceeds
``retriever.max_failed_share`` stops with a message naming the retriever.

The runs use the real trainer on configs/tiny-cpu.yaml (the real BM25 index, real TRL) with a
scripted generation backend, so they take seconds. How TRL treats the failed rollouts' advantages
and loss is pinned in test_trl_equivalence.py.
"""

from __future__ import annotations

import json
import math
import random
import socket
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from research_rl.backends.scripted import ScriptedBackend
from research_rl.cli import app
from research_rl.questions import Question
from research_rl.retrieval import RetrieverConfig, RetrieverError, make_retriever
from research_rl.retrieval.client import HTTPRetriever
from research_rl.rollout import RolloutConfig, RolloutEngine
from research_rl.training import checkpoints
from research_rl.training.rollouts import (
    RetrieverFailureError,
    RolloutFunction,
    StepRollouts,
    research_reward,
    to_trl_batch,
)
from research_rl.training.run import load_train_config, train
from research_rl.trajectory import Trajectory

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "configs" / "tiny-cpu.yaml"
TINY = ROOT / "examples" / "tiny"
PER_STEP = 10  # configs/tiny-cpu.yaml: 2 questions x group of 5

# Five scripts whose searches end 2 tokens apart: generated in chunks of 2 tokens, the rollouts of
# each script reach </search> in their own chunk, so a step's searches go to the retriever in five
# calls (two queries each: one rollout per question) and a failed call fails 2 of the 10.
SCRIPTS = [
    [
        "<think> " + "a " * (2 * k) + "</think> <search> Kalo </search>",
        " <think> b </think> <answer> \\boxed{Kaloton} </answer>",
    ]
    for k in range(5)
]


class FlakyRetriever:
    """The real index, with ``rate`` of its calls failing as a retriever that timed out: that
    share of every ``period`` calls, at positions drawn from ``seed``."""

    def __init__(self, inner, rate: float, seed: int, period: int = 10) -> None:
        self.inner, self.period, self.failing = inner, period, round(rate * period)
        self.rng = random.Random(seed)
        self.calls: list[tuple[int, bool]] = []  # (queries, failed) per call
        self._doomed: set[int] = set()

    def search(self, queries, topk):
        position = len(self.calls) % self.period
        if position == 0:
            self._doomed = set(self.rng.sample(range(self.period), self.failing))
        failed = position in self._doomed
        self.calls.append((len(queries), failed))
        if failed:
            raise RetrieverError("retriever at http://flaky:8000/retrieve: ReadTimeout")
        return self.inner.search(queries, topk)

    def close(self) -> None:
        self.inner.close()


def _scripted():
    """A backend factory: one scripted backend for the whole run."""
    backend: dict[str, ScriptedBackend] = {}

    def factory(trainer, model):
        return backend.setdefault("b", ScriptedBackend(trainer.processing_class, default=SCRIPTS))

    return factory


def _metrics(run: Path) -> list[dict]:
    path = run / "metrics.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines()] if path.is_file() else []


def _rows(run: Path, step: int) -> list[dict]:
    path = run / "rollouts" / f"step_{step}.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_a_run_with_20_percent_of_searches_failing_completes_and_logs_the_rate(tmp_path, caplog):
    cfg = load_train_config(
        CONFIG,
        {
            "grpo.max_steps": 2,
            "rollout.chunk_tokens": 2,
            "data.validation": None,  # every retriever call below is a training call
            "run.progress": False,
        },
    )
    assert cfg.retriever.max_failed_share == 0.5  # the default limit applies
    flaky = FlakyRetriever(make_retriever(cfg.retriever), rate=0.2, seed=1)
    out = tmp_path / "run"
    with caplog.at_level("WARNING"):
        result = train(cfg, output_dir=out, backend_factory=_scripted(), retriever=flaky)
    # TRL's warning about rewards of None (it asks for a reward function that returns one) is
    # not shown for the failed rollouts: their share is reported instead
    assert not [r for r in caplog.records if "returned None" in r.getMessage()]

    assert result.final_step == 2
    assert [s for s, _ in checkpoints.complete_checkpoints(out)] == [2]
    assert len(flaky.calls) == 2 * 5 and all(n == 2 for n, _ in flaky.calls)
    failed_calls = [failed for _, failed in flaky.calls]
    assert sum(failed_calls) == 2  # 20%
    rows = _metrics(out)
    assert [r["step"] for r in rows] == [1, 2]
    for row in rows:
        step = row["step"]
        # the logged rate is the share of the step's rollouts that lost their search
        dumped = _rows(out, step)
        lost = [t for t in dumped if t["finish_reason"] == "retriever_error"]
        assert row["retriever_failed_share"] == len(lost) / PER_STEP
        assert row["finish/retriever_error"] == len(lost)
        assert (
            row["retriever_failed_share"] == 2 * sum(failed_calls[5 * (step - 1) : 5 * step]) / 10
        )
        for t in lost:
            assert t["reward"] is None and "ReadTimeout" in t["error"]
            assert "<result>" not in t["text"]
        assert all(t["reward"] is not None for t in dumped if t not in lost)
        assert math.isfinite(row["loss"]) and math.isfinite(row["grad_norm"])
    shares = [r["retriever_failed_share"] for r in rows]
    assert sum(shares) / len(shares) == pytest.approx(0.2)
    assert any(0 < s < 1 for s in shares)  # a step trained on its surviving rollouts
    # TensorBoard got the figure too
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    logged = [e.value for e in events.Scalars("retriever_failed_share")]
    assert logged == pytest.approx(shares)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _down(port: int, **more) -> dict:
    return {
        "retriever.index": None,
        "retriever.url": f"http://127.0.0.1:{port}",
        "retriever.max_retries": 1,
        "retriever.backoff_s": 0.0,
        "retriever.timeout_s": 2.0,
        "run.progress": False,
        **more,
    }


def test_a_run_whose_retriever_is_down_stops_naming_its_url(tmp_path):
    port = _free_port()
    cfg = load_train_config(CONFIG, _down(port))
    out = tmp_path / "run"
    with pytest.raises(RetrieverFailureError) as err:
        train(cfg, output_dir=out, backend_factory=_scripted())
    message = str(err.value)
    url = f"http://127.0.0.1:{port}"
    assert message.startswith(
        f"step 1: 10 of 10 rollouts (100%) lost a search to the retriever at {url}, over "
        "retriever.max_failed_share=0.5; last error: "
    )
    assert f"{url}/retrieve unreachable after 2 attempts: ConnectError" in message
    assert message.endswith("training stopped; no checkpoint was written yet")
    # stopped before the step trained: nothing logged, nothing saved
    assert _metrics(out) == [] and checkpoints.complete_checkpoints(out) == []


def test_the_cli_reports_the_stop_with_the_url_and_exits_1(tmp_path, monkeypatch):
    import research_rl.training.run as run

    monkeypatch.setattr(run, "default_backend_factory", lambda cfg, tokenizer: _scripted())
    port = _free_port()
    sets = _down(port, **{"grpo.max_steps": 1, "retriever.max_failed_share": 0})
    args = ["train", "--config", str(CONFIG), "--output-dir", str(tmp_path / "run")]
    for key, value in sets.items():
        args += ["--set", f"{key}={'null' if value is None else value}"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1, result.output
    assert f"lost a search to the retriever at http://127.0.0.1:{port}" in result.output
    assert "over retriever.max_failed_share=0;" in result.output
    assert "Traceback" not in result.output


# -- the pieces --------------------------------------------------------------------------------
def _traj(i: int, failed: bool) -> Trajectory:
    return Trajectory(
        question_id=f"q{i}",
        question="?",
        golden_answers=["Paris"],
        sample_index=0,
        prompt_ids=[1, 2],
        completion_ids=[5, 6, 7],
        loss_mask=[1, 0, 1],
        text="<think>t</think><answer>\\boxed{Paris}</answer>",
        finish_reason="retriever_error" if failed else "answer",
        error="boom" if failed else None,
        profile="strict",
    )


@pytest.mark.parametrize("n_failed,stops", [(0, False), (5, False), (6, True), (10, True)])
def test_the_limit_is_a_share_of_the_step_and_is_inclusive(n_failed, stops):
    func = RolloutFunction({}, None, None, 0, max_failed_share=0.5, retriever_name="the index X")
    step = StepRollouts(3, [_traj(i, i < n_failed) for i in range(10)])
    if not stops:
        func._check_failures(step)
        return
    with pytest.raises(RetrieverFailureError) as err:
        func._check_failures(step)
    assert str(err.value) == (
        f"step 3: {n_failed} of 10 rollouts ({n_failed * 10}%) lost a search to the index X, "
        "over retriever.max_failed_share=0.5; last error: boom"
    )


def test_a_failed_rollout_reaches_trl_masked_and_without_a_reward():
    trajs = [_traj(0, False), _traj(1, True)]
    batch = to_trl_batch(trajs)
    assert batch["env_mask"] == [[1, 0, 1], [0, 0, 0]]
    assert batch["completion_ids"] == [[5, 6, 7]] * 2  # its tokens stay: TRL needs a completion
    assert batch["retriever_failed"] == [False, True]
    keys = ("response_text", "truncated", "profile", "retriever_failed")
    rewards = research_reward([], golden_answers=[["Paris"]] * 2, **{k: batch[k] for k in keys})
    assert rewards == [1.0, None]  # None: TRL leaves it out of the group's mean and std


def test_max_failed_share_is_a_validated_share():
    assert RetrieverConfig(index="i").max_failed_share == 0.5
    assert RetrieverConfig(index="i", max_failed_share=0).max_failed_share == 0
    from research_rl.config import ConfigError

    with pytest.raises(ConfigError, match="retriever.max_failed_share"):
        load_train_config(CONFIG, {"retriever.max_failed_share": 1.5})


def test_the_stop_message_names_the_retriever_in_use():
    from research_rl.training.run import retriever_name

    assert retriever_name(RetrieverConfig(index="idx/wiki")) == "the index idx/wiki"
    url = RetrieverConfig(url="http://search:8000")
    assert retriever_name(url) == "the retriever at http://search:8000"
    given = HTTPRetriever("http://other:9")  # one passed to train(retriever=...) wins
    assert retriever_name(url, given) == "the retriever at http://other:9/retrieve"
    assert retriever_name(url, FlakyRetriever(None, 0.2, 0)) == "the retriever FlakyRetriever"


# -- retries: the HTTP client's, before a search counts as failed -------------------------------
class _Transport:
    """Times out the first ``timeouts`` requests, then answers with one hit per query."""

    def __init__(self, timeouts: int) -> None:
        self.timeouts, self.requests = timeouts, 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        if self.requests <= self.timeouts:
            raise httpx.ReadTimeout("timed out", request=request)
        n = len(json.loads(request.content)["queries"])
        hit = {"document": {"id": "d1", "contents": "Kalo\nKalo was born in Kaloton."}, "score": 1}
        return httpx.Response(200, json={"result": [[hit]] * n})


@pytest.mark.parametrize("timeouts,failed", [(2, False), (3, True)])
def test_timeouts_get_bounded_retries_then_the_rollout_fails_naming_the_url(timeouts, failed):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(TINY / "model")
    transport = _Transport(timeouts)
    client = httpx.Client(transport=httpx.MockTransport(transport))
    retriever = HTTPRetriever("http://retriever:8000", max_retries=2, backoff_s=0, client=client)
    question = Question("q", "Where was Kalo born?", ["Kaloton"])
    backend = ScriptedBackend(tokenizer, default=SCRIPTS[:1])
    engine = RolloutEngine(backend, tokenizer, retriever, RolloutConfig(profile="strict"))
    (t,) = engine.run([question])
    assert transport.requests == min(timeouts + 1, 3)  # at most max_retries + 1 attempts
    assert t.failed is failed
    if failed:
        assert t.reward is None and t.error == (
            "retriever at http://retriever:8000/retrieve unreachable after 3 attempts: "
            "timed out after 5.0s"
        )
    else:
        assert t.finish_reason == "answer" and "Kaloton." in t.text and t.reward.value == 1.0
