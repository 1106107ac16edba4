"""What a training run writes every step: metrics.jsonl, TensorBoard, W&B, the console, rollouts,
validation. One callback, so the order within a step is fixed: time the step, dump rollouts, run
validation, then (on TRL's log event) write the step's line and check it is finite.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from transformers import TrainerCallback

from research_rl.metrics import batch_metrics
from research_rl.run_dir import METRICS, ROLLOUTS, TENSORBOARD, append_jsonl, write_jsonl_atomic
from research_rl.training.memory import peak_rss_gb
from research_rl.training.rollouts import NonFiniteError, RolloutFunction, gather_all
from research_rl.trajectory import Trajectory

# TRL's log keys -> ours (the figures the issue asks for that TRL computes: from the masked loss).
TRL_KEYS = {
    "loss": "loss",
    "kl": "kl",
    "clip_ratio/region_mean": "clip_fraction",
    "entropy": "entropy",
    "learning_rate": "learning_rate",
    "grad_norm": "grad_norm",
    "frac_reward_zero_std": "frac_groups_zero_std",
}

Validator = Callable[[], list[Trajectory]]  # greedy rollouts on the validation questions


def summarize(trajectories: list[Trajectory]) -> dict[str, float]:

    return dict(batch_metrics(trajectories))


class RunMonitor(TrainerCallback):
    def __init__(
        self,
        run_dir: str | Path,
        rollout_func: RolloutFunction,
        *,
        validator: Validator | None = None,
        eval_every: int = 50,
        rollouts_every: int = 10,
        rollouts_per_dump: int = 16,
        tensorboard: bool = True,
        wandb_project: str | None = None,
        run_name: str | None = None,
        progress: bool = True,
        config_dict: dict | None = None,
        extra: list[Callable[[dict], None]] | None = None,
    ) -> None:
        self.run_dir = Path(run_dir)
        self.rollout_func = rollout_func
        self.validator = validator
        self.eval_every = eval_every
        self.rollouts_every = rollouts_every
        self.rollouts_per_dump = rollouts_per_dump
        self.tensorboard = tensorboard
        self.wandb_project = wandb_project
        self.run_name = run_name
        self.show_progress = progress
        self.config_dict = config_dict or {}
        self.extra = extra or []  # user hooks: called with each step's record (the demo's)
        self._step_start = 0.0
        self._pending: dict[str, float] = {}
        self._writer = None
        self._wandb = None
        self._progress = None
        self._task = None
        self._console = None
        self._metrics_path: Path | None = None

    # -- lifecycle ----------------------------------------------------------------------------
    def on_train_begin(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        self._metrics_path = self.run_dir / METRICS
        if self.tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(log_dir=str(self.run_dir / TENSORBOARD))
        if self.wandb_project:
            import wandb

            # The run id lives in the run directory, so a resumed run continues the same W&B run.
            id_file = self.run_dir / "wandb_run_id"
            if not id_file.is_file():
                id_file.write_text(wandb.util.generate_id(), encoding="utf-8")
            self._wandb = wandb.init(
                project=self.wandb_project,
                name=self.run_name or self.run_dir.name,
                id=id_file.read_text(encoding="utf-8").strip(),
                config=self.config_dict,
                dir=str(self.run_dir),
                resume="allow",
            )
        if self.show_progress:
            self._console = Console()
            if self._console.is_terminal:
                self._progress = Progress(
                    TextColumn("[bold]train"),
                    BarColumn(),
                    MofNCompleteColumn(),
                    TimeElapsedColumn(),
                    TextColumn("{task.description}"),
                    console=self._console,
                )
                self._progress.start()
                self._task = self._progress.add_task(
                    "", total=state.max_steps, completed=state.global_step
                )
            # Not a terminal (a log file, a cluster job): one plain line per step instead.

    def on_train_end(self, args, state, control, **kwargs):
        self.close()

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._wandb is not None:
            self._wandb.finish()
            self._wandb = None
        self._metrics_path = None

    # -- per step -----------------------------------------------------------------------------
    def on_step_begin(self, args, state, control, **kwargs):
        self._step_start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        step = state.global_step
        seconds = time.perf_counter() - self._step_start
        last = self.rollout_func.last
        local = last.trajectories if last is not None and last.step == step else []
        rollout_seconds = last.seconds if local else 0.0
        trajectories = gather_all(local)
        pending: dict[str, float] = {}
        if trajectories:
            pending.update(summarize(trajectories))
        pending["seconds_per_step"] = seconds
        pending["rollout_seconds"] = rollout_seconds
        pending["rollout_share"] = rollout_seconds / seconds if seconds > 0 else 0.0
        pending["peak_rss_gb"] = peak_rss_gb()  # this step's peak (reset for the next)
        final = step >= state.max_steps
        if (
            state.is_world_process_zero
            and trajectories
            and (step % self.rollouts_every == 0 or final)
        ):
            self._dump_rollouts(step, trajectories)
        if self.validator is not None and (step % self.eval_every == 0 or final):
            start = time.perf_counter()
            val = gather_all(self.validator())
            if val:
                pending.update({f"val/{k}": v for k, v in summarize(val).items()})
                pending["val/seconds"] = time.perf_counter() - start
                if state.is_world_process_zero:
                    self._dump_rollouts(step, val, name=f"val/step_{step}.jsonl", limit=None)
        self._pending = pending

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        if "train_runtime" in logs:  # the end-of-training summary, not a step
            return
        record: dict[str, Any] = {"step": state.global_step, "epoch": state.epoch}
        for src, dst in TRL_KEYS.items():
            if logs.get(src) is not None:
                record[dst] = float(logs[src])
        record.update(self._pending)
        self._pending = {}
        for key in ("loss", "grad_norm", "reward_mean"):
            value = record.get(key)
            if value is not None and not math.isfinite(value):
                # Raised before the checkpoint of this step is written: the last good one stays.
                raise NonFiniteError(f"step {state.global_step}: {key} is {value}")
        if not state.is_world_process_zero:
            return
        if self._metrics_path is not None:
            append_jsonl(self._metrics_path, [record])
        if self._writer is not None:
            for key, value in record.items():
                if key != "step" and isinstance(value, (int, float)):
                    self._writer.add_scalar(key, value, state.global_step)
            self._writer.flush()
        if self._wandb is not None:
            self._wandb.log(
                {k: v for k, v in record.items() if k != "step"}, step=state.global_step
            )
        if self._console is not None:
            desc = (
                f"reward {record.get('reward_mean', float('nan')):.3f}  "
                f"f1 {record.get('f1', float('nan')):.3f}  "
                f"kl {record.get('kl', 0.0):.4f}  "
                f"{record.get('seconds_per_step', 0.0):.2f}s/step "
                f"({100 * record.get('rollout_share', 0.0):.0f}% rollout)"
            )
            if record.get("retriever_failed_share"):
                desc += f"  retriever failed {100 * record['retriever_failed_share']:.0f}%"
            if "val/reward_mean" in record:
                desc += f"  val reward {record['val/reward_mean']:.3f}"
            if self._progress is not None:
                self._progress.update(self._task, completed=state.global_step, description=desc)
            else:
                self._console.print(
                    f"step {state.global_step}/{state.max_steps}  {desc}", soft_wrap=True
                )
        for hook in self.extra:
            hook(record)

    def _dump_rollouts(
        self,
        step: int,
        trajectories: list[Trajectory],
        name: str | None = None,
        limit: int | None = -1,
    ) -> None:
        if limit == -1:
            limit = self.rollouts_per_dump
        chosen = trajectories if limit is None else trajectories[:limit]  # whole groups first
        rows = [{**t.to_json(with_ids=False), "step": step} for t in chosen]
        write_jsonl_atomic(self.run_dir / ROLLOUTS / (name or f"step_{step}.jsonl"), rows)
