"""The ``research train`` config: one YAML file, validated, mapped onto TRL's ``GRPOConfig``.

Defaults reproduce the ReSearch paper and its released training code (group size 5, k3 KL 1e-3
against a frozen reference, clip 0.2, token-mean, lr 1e-6, temperature 1.0, entropy bonus 0.001,
no importance-sampling correction of vLLM's samples). Where TRL 1.16's own default differs
(``beta=0``, ``num_generations=8``, bias-corrected KL, ``entropy_coef=0``,
``vllm_importance_sampling_correction=True``), :func:`grpo_args` sets the paper's value
explicitly, so a TRL upgrade that moves a default cannot silently change the objective.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, model_validator

from research_rl.config import StrictModel, resolve_path
from research_rl.retrieval.config import RetrieverConfig
from research_rl.rollout import RolloutConfig

if TYPE_CHECKING:
    from trl import GRPOConfig


class ModelSettings(StrictModel):
    path: str  # a local directory, or a hub name where the hub is reachable
    tokenizer: str | None = None  # defaults to ``path``
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    trust_remote_code: bool = False
    gradient_checkpointing: bool = False


class LoraSettings(StrictModel):
    """LoRA through peft; the frozen reference is then the base model with the adapter disabled."""

    enabled: bool = False
    r: int = Field(16, ge=1)
    alpha: int = Field(32, ge=1)
    dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: list[str] | Literal["all-linear"] = "all-linear"


class DataSettings(StrictModel):
    train: str  # question JSONL (research_rl.questions format)
    validation: str | None = None
    max_train_questions: int | None = Field(None, ge=1)
    max_validation_questions: int | None = Field(None, ge=1)
    shuffle: bool = True


class GRPOSettings(StrictModel):
    """The objective and the optimiser. Every paper value is a default here."""

    group_size: int = Field(5, ge=2)  # rollouts per question (G)
    questions_per_step: int = Field(256, ge=1)  # per optimiser step, across all devices
    # Completions per forward/backward on one device.
    # None: sized to fit grpo.memory_budget_gb on CPU (research_rl.training.memory).
    micro_batch_size: int | None = Field(None, ge=1)
    memory_budget_gb: float | None = Field(None, gt=0)  # None: 60% of the available memory
    beta: float = Field(1e-3, ge=0)  # k3 KL coefficient against the frozen reference
    # loss = policy loss - entropy_coef * token-mean entropy: ReSearch trains with verl's default
    # coefficient, 0.001 (TRL's default is 0).
    entropy_coef: float = Field(1e-3, ge=0)
    clip_eps: float = Field(0.2, gt=0)
    clip_eps_high: float | None = Field(None, gt=0)  # None = symmetric clipping
    # token-mean: every unmasked token of the step weighs the same (the paper's, verl's default);
    # seq-mean-token-mean: mean over each sequence first (the original GRPO paper's).
    loss_aggregation: Literal["token-mean", "seq-mean-token-mean"] = "token-mean"
    scale_rewards: Literal["group", "batch", "none"] = "group"
    learning_rate: float = Field(1e-6, gt=0)
    lr_scheduler: Literal["constant", "constant_with_warmup", "linear", "cosine"] = "constant"
    warmup_steps: int = Field(0, ge=0)
    weight_decay: float = Field(0.01, ge=0)
    max_grad_norm: float = Field(1.0, gt=0)
    temperature: float = Field(1.0, gt=0)
    top_p: float = Field(1.0, gt=0, le=1)
    top_k: int = Field(0, ge=0)
    epochs: float = Field(2.0, gt=0)
    max_steps: int | None = Field(None, ge=1)  # overrides epochs
    seed: int = 42

    @model_validator(mode="after")
    def _micro_batch_divides(self) -> GRPOSettings:
        total = self.questions_per_step * self.group_size
        if self.micro_batch_size is not None and total % self.micro_batch_size:
            raise ValueError(
                f"micro_batch_size {self.micro_batch_size} must divide questions_per_step x "
                f"group_size = {total}"
            )
        return self


class GenerationSettings(StrictModel):
    """Which engine generates the rollouts. ``hf``: transformers ``generate`` on the training model
    (CPU and small GPU runs). ``vllm``: TRL's vLLM engine, whose weights TRL syncs with the policy
    before every rollout call: ``colocate`` (one engine per training process) or ``server``
    (``trl vllm-serve`` on other GPUs)."""

    backend: Literal["hf", "vllm"] = "hf"
    vllm_mode: Literal["colocate", "server"] = "colocate"
    vllm_server_url: str = "http://localhost:8000"
    vllm_gpu_memory_utilization: float = Field(0.3, gt=0, le=1)
    # TRL's correction of the policy loss by the ratio of the trainer's to vLLM's token
    # probabilities (on by default in TRL 1.16). ReSearch has none: off unless asked for.
    vllm_importance_sampling_correction: bool = False
    # The rollout engine's turn count differs per process; a tensor-parallel colocated engine
    # needs every process to call generate in lockstep, so only 1 is supported here.
    vllm_tensor_parallel_size: Literal[1] = 1


class RunSettings(StrictModel):
    output_dir: str | None = None  # the CLI's --output-dir wins
    save_every: int = Field(50, ge=1)  # checkpoint every N steps (and at the end)
    keep_checkpoints: int = Field(2, ge=1)  # newest complete checkpoints kept
    eval_every: int = Field(50, ge=1)  # greedy validation every N steps (and at the end)
    rollouts_every: int = Field(10, ge=1)  # write sampled trajectories every N steps
    rollouts_per_dump: int = Field(16, ge=1)  # how many trajectories each dump keeps
    tensorboard: bool = True
    wandb: bool = False
    wandb_project: str = "research-rl"
    run_name: str | None = None
    progress: bool = True  # the rich progress display on the console
    # Every search the rollouts send is recorded (evaluation/replay.py) into this store, by default
    # <run>/retrieval; a store can be shared between runs over the same retriever.
    retrieval_store: str | None = None
    # Answer every search from a recorded store (or the run directory of a recorded run): neither
    # the index nor the server is opened, and the same seeds give the same rollouts.
    replay: str | None = None


class TrainConfig(StrictModel):
    model: ModelSettings
    data: DataSettings
    retriever: RetrieverConfig
    rollout: RolloutConfig = Field(default_factory=RolloutConfig)
    grpo: GRPOSettings = Field(default_factory=GRPOSettings)
    generation: GenerationSettings = Field(default_factory=GenerationSettings)
    lora: LoraSettings = Field(default_factory=LoraSettings)
    run: RunSettings = Field(default_factory=RunSettings)


def resolve_relative_paths(cfg: TrainConfig, base: Path) -> TrainConfig:
    """Resolve the config's paths with :func:`research_rl.config.resolve_path`."""

    def fix(value: str | None) -> str | None:
        return resolve_path(value, base)

    cfg = cfg.model_copy(deep=True)
    cfg.model.path = fix(cfg.model.path)
    cfg.model.tokenizer = fix(cfg.model.tokenizer)
    cfg.data.train = fix(cfg.data.train)
    cfg.data.validation = fix(cfg.data.validation)
    cfg.rollout.template_path = fix(cfg.rollout.template_path)
    cfg.rollout.system_prompt_path = fix(cfg.rollout.system_prompt_path)
    if cfg.retriever.index is not None:
        cfg.retriever.index = fix(cfg.retriever.index)
    cfg.run.retrieval_store = fix(cfg.run.retrieval_store)
    cfg.run.replay = fix(cfg.run.replay)
    return cfg


def device_batch(grpo: GRPOSettings, world_size: int) -> tuple[int, int]:
    """(per-device micro-batch, gradient-accumulation steps) for one optimiser step."""
    total = grpo.questions_per_step * grpo.group_size
    if total % world_size:
        raise ValueError(
            f"questions_per_step x group_size = {total} completions do not split over "
            f"{world_size} processes"
        )
    per_device = total // world_size
    micro = min(grpo.micro_batch_size or per_device, per_device)
    if per_device % micro:
        raise ValueError(
            f"micro_batch_size {micro} does not divide the {per_device} completions each of the "
            f"{world_size} processes gets"
        )
    return micro, per_device // micro


def grpo_args(
    cfg: TrainConfig, output_dir: str | Path, world_size: int = 1, **overrides: Any
) -> GRPOConfig:
    """Map the config onto TRL's GRPOConfig, paper values set explicitly."""
    from trl import GRPOConfig

    g = cfg.grpo
    micro, accumulation = device_batch(g, world_size)
    kwargs: dict[str, Any] = dict(
        output_dir=str(output_dir),
        # objective
        num_generations=g.group_size,
        beta=g.beta,
        use_bias_correction_kl=False,  # plain k3, as the paper (TRL 1.16 defaults to True)
        epsilon=g.clip_eps,
        epsilon_high=g.clip_eps_high,
        # "dapo" divides the summed per-token loss by the number of unmasked tokens of the whole
        # generation batch (all processes, all accumulation steps): the plain token-mean. "bnpo"
        # normalises per micro-batch and "grpo" per sequence.
        loss_type="dapo" if g.loss_aggregation == "token-mean" else "grpo",
        scale_rewards=g.scale_rewards,
        importance_sampling_level="token",
        num_iterations=1,
        mask_truncated_completions=False,  # the reward already gives truncated rollouts 0
        top_entropy_quantile=1.0,
        entropy_coef=g.entropy_coef,
        use_adaptive_entropy=False,
        # sampling (the rollout function reads these from here)
        temperature=g.temperature,
        top_p=g.top_p,
        top_k=g.top_k,
        max_completion_length=cfg.rollout.effective().max_response_tokens,
        # batch layout: one generation per optimiser step
        per_device_train_batch_size=micro,
        gradient_accumulation_steps=accumulation,
        steps_per_generation=accumulation,
        shuffle_dataset=cfg.data.shuffle,
        # optimiser
        learning_rate=g.learning_rate,
        lr_scheduler_type=g.lr_scheduler,
        warmup_steps=g.warmup_steps,
        weight_decay=g.weight_decay,
        max_grad_norm=g.max_grad_norm,
        num_train_epochs=g.epochs,
        max_steps=g.max_steps if g.max_steps is not None else -1,
        seed=g.seed,
        data_seed=g.seed,
        # TRL turns checkpointing on by default; it only costs time on small models
        activation_checkpointing=cfg.model.gradient_checkpointing,
        bf16=cfg.model.dtype == "bfloat16",
        fp16=cfg.model.dtype == "float16",
        # generation engine
        use_vllm=cfg.generation.backend == "vllm",
        vllm_mode=cfg.generation.vllm_mode,
        vllm_server_base_url=cfg.generation.vllm_server_url
        if cfg.generation.vllm_mode == "server"
        else None,
        vllm_gpu_memory_utilization=cfg.generation.vllm_gpu_memory_utilization,
        vllm_tensor_parallel_size=cfg.generation.vllm_tensor_parallel_size,
        vllm_importance_sampling_correction=cfg.generation.vllm_importance_sampling_correction,
        # logging and checkpoints are ours (run directory layout, atomic saves)
        logging_steps=1,
        logging_nan_inf_filter=False,  # a NaN loss must surface, not be averaged away
        report_to="none",
        disable_tqdm=True,
        save_strategy="steps",
        save_steps=cfg.run.save_every,
        save_total_limit=None,
        eval_strategy="no",
        remove_unused_columns=False,
        dataloader_num_workers=0,
        use_cpu=no_accelerator(),
        model_init_kwargs={
            "dtype": cfg.model.dtype,
            "trust_remote_code": cfg.model.trust_remote_code,
        },
    )
    if (
        cfg.model.gradient_checkpointing
    ):  # passed only when on: the old name warns in transformers 5
        kwargs["gradient_checkpointing"] = True
    kwargs.update(overrides)
    return GRPOConfig(**kwargs)


def no_accelerator() -> bool:
    import torch

    return not torch.cuda.is_available()
