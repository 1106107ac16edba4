"""``GRPOTrainer`` with what the run directory needs: atomic checkpoints, an epoch-seeded sampler
(the same data order after a resume, in every epoch), a stop on non-finite losses, and
micro-batches that are not padded to the step's longest rollout.

The objective itself is TRL's, untouched; ``tests/training/test_trl_equivalence.py`` pins it to the
reference in ``research_rl.grpo``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from trl import GRPOTrainer
from trl.trainer.utils import RepeatSampler

from research_rl.training import checkpoints
from research_rl.training.micro_batches import (
    can_regroup,
    entropy_scale,
    entropy_weights,
    partition_free,
    regroup,
    rotary,
    trim,
    trimmed_logps,
)
from research_rl.training.rollouts import NonFiniteError


class EpochSeededRepeatSampler(RepeatSampler):
    """TRL's sampler draws each epoch's permutation from one generator that advances epoch after
    epoch, so a run resumed in epoch 2 would shuffle differently from the run it continues. Here
    the permutation is a function of (seed, epoch) alone; the trainer calls ``set_epoch``."""

    def set_epoch(self, epoch: int) -> None:
        if self.shuffle:
            self.generator.manual_seed((self.seed or 0) + epoch)


class _NoRewardWarning(logging.Filter):
    """TRL warns, with the whole row, for every step that holds a rollout without a reward, and
    asks for a reward function that returns one. Ours are the rollouts that failed on the
    retriever, left out on purpose and counted in ``retriever_failed_share``."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "All reward functions returned None" not in record.getMessage()


_TRL_LOGGER = logging.getLogger("trl.trainer.grpo_trainer")
if not any(isinstance(f, _NoRewardWarning) for f in _TRL_LOGGER.filters):
    _TRL_LOGGER.addFilter(_NoRewardWarning())


class ResearchGRPOTrainer(GRPOTrainer):
    """Checkpoints go to ``<run_dir>/checkpoints/step_N`` through a sealed, atomic rename."""

    def __init__(self, *args: Any, run_dir: str | Path, keep_checkpoints: int = 2, **kwargs: Any):
        self.run_dir = Path(run_dir)
        self.keep_checkpoints = keep_checkpoints
        super().__init__(*args, **kwargs)

    def _get_train_sampler(self, dataset=None) -> EpochSeededRepeatSampler:
        dataset = self.train_dataset if dataset is None else dataset
        sampler = EpochSeededRepeatSampler(
            data_source=dataset,
            mini_repeat_count=self.num_generations,
            batch_size=self.args.generation_batch_size // self.num_generations,
            repeat_count=self.num_iterations * self.args.steps_per_generation,
            shuffle=self.shuffle_dataset,
            seed=self.args.seed,
        )
        sampler.set_epoch(0)
        return sampler

    def training_step(self, model, inputs, num_items_in_batch):
        loss = super().training_step(model, inputs, num_items_in_batch)
        # Before the optimiser step: the weights of the last good step are still intact.
        if not torch.isfinite(loss).all():
            raise NonFiniteError(
                f"step {self.state.global_step + 1}: the loss is {loss.detach().float().item()}"
            )
        return loss

    # -- micro-batches cut to their own longest rollout (training/micro_batches.py) -------------
    _entropy_scale: torch.Tensor | None = None  # set while _compute_loss runs on a regrouped batch

    @property
    def _rotary(self) -> bool:
        return rotary(getattr(self.model, "config", None))  # self.model: never the DDP wrapper

    @property
    def _regroups(self) -> bool:
        """Whether rows may change micro-batch: the policy and KL terms do not see it, and an
        entropy bonus keeps TRL's weights unless it selects tokens or adapts its coefficient (both
        read the entropies themselves, which the weights scale)."""
        plain_bonus = self.top_entropy_quantile == 1.0 and not self.use_adaptive_entropy
        return partition_free(self.loss_type) and (not self._entropy_bonus_enabled or plain_bonus)

    def _prepare_inputs(self, generation_batch):
        fresh = (
            self._buffered_inputs is None
            or self._step % (self.args.steps_per_generation * self.num_iterations) == 0
        )
        inputs = super()._prepare_inputs(generation_batch)
        if not self.model.training or not fresh or not can_regroup(self._buffered_inputs[0]):
            return inputs
        if self._regroups:
            batches = self._buffered_inputs
            if self._entropy_bonus_enabled:
                batches = entropy_weights(batches)
            self._buffered_inputs = regroup(batches, self._rotary)
        else:
            self._buffered_inputs = [trim(b, self._rotary) for b in self._buffered_inputs]
        return self._buffered_inputs[self._step % self.args.steps_per_generation]

    def _compute_loss(self, model, inputs):
        if "entropy_weight" not in inputs:
            return super()._compute_loss(model, inputs)
        inputs = dict(inputs)
        self._entropy_scale = entropy_scale(inputs)
        del inputs["entropy_weight"]
        try:
            return super()._compute_loss(model, inputs)
        finally:
            self._entropy_scale = None

    def _get_per_token_logps_and_entropies(
        self,
        model,
        input_ids,
        attention_mask,
        logits_to_keep,
        batch_size=None,
        compute_entropy=False,
        compute_aux_loss=False,
        **multimodal,
    ):
        parent = super()._get_per_token_logps_and_entropies
        if compute_aux_loss or any(v is not None for v in multimodal.values()):
            logps, entropies, aux = parent(
                model, input_ids, attention_mask, logits_to_keep, batch_size, compute_entropy,
                compute_aux_loss, **multimodal,
            )  # fmt: skip
        else:

            def chunk(ids, mask, keep, size, entropy):
                return parent(model, ids, mask, keep, size, entropy)

            logps, entropies = trimmed_logps(
                chunk, input_ids, attention_mask, logits_to_keep, batch_size, compute_entropy,
                self._rotary,
            )  # fmt: skip
            aux = None
        if compute_entropy and self._entropy_scale is not None:
            entropies = entropies * self._entropy_scale.to(entropies)
        return logps, entropies, aux

    def create_model_card(self, *args: Any, **kwargs: Any) -> None:
        """No model card in every checkpoint (TRL writes one on each save)."""

    def _save_checkpoint(self, model, trial) -> None:
        # TRL/transformers write <args.output_dir>/checkpoint-N, and args.output_dir is the run's
        # checkpoints/.partial directory; only a sealed copy is renamed to checkpoints/step_N.
        step = self.state.global_step
        super()._save_checkpoint(model, trial)
        self.accelerator.wait_for_everyone()
        if self.args.should_save:
            staged = Path(self.args.output_dir) / f"checkpoint-{step}"
            checkpoints.finalize(staged, self.run_dir, step)
            checkpoints.prune(self.run_dir, self.keep_checkpoints)
        self.accelerator.wait_for_everyone()
