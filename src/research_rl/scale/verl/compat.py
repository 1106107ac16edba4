"""verl's agent-loop API, or a stand-in with the same shape when verl is not installed.

With verl installed (its own environment, ``research-rl[verl]``) this re-exports the real
``AgentLoopBase``, ``AgentLoopOutput`` and ``register`` of ``verl.experimental.agent_loop``.
Without it (the default install, CPU tests) it provides minimal stand-ins that mirror verl 0.9.1's
signatures: the constructor keywords ``AgentLoopWorker`` passes, the ``self.config`` /
``self.rollout_config`` / ``self.server_manager`` / ``self.tokenizer`` attributes, the output
model's fields, and the registry of ``{"_target_": "module.Class"}`` entries. They exist so the
ReSearch loop can be imported and tested anywhere; training always runs on the real classes.
"""

from __future__ import annotations

from typing import Any

try:  # pragma: no cover - exercised in a verl environment
    from verl.experimental.agent_loop.agent_loop import (
        AgentLoopBase,
        AgentLoopOutput,
        _agent_loop_registry,
        register,
    )

    HAVE_VERL = True
except ImportError:
    HAVE_VERL = False
    from pydantic import BaseModel

    class AgentLoopMetrics(BaseModel):  # verl 0.9.1 field names
        generate_sequences: float = 0.0
        tool_calls: float = 0.0
        compute_score: float = 0.0
        num_preempted: int = -1

    class AgentLoopOutput(BaseModel):  # type: ignore[no-redef]
        prompt_ids: list[int]
        response_ids: list[int]
        response_mask: list[int]  # 1 for model tokens, 0 for tool (inserted) tokens
        response_logprobs: list[float] | None = None
        routed_experts: Any | None = None
        multi_modal_data: dict[str, Any] | None = None
        reward_score: float | None = None
        num_turns: int = 0
        metrics: AgentLoopMetrics
        extra_fields: dict[str, Any] = {}

    class AgentLoopBase:  # type: ignore[no-redef]
        def __init__(
            self,
            trainer_config: Any,
            server_manager: Any,
            tokenizer: Any,
            processor: Any,
            dataset_cls: Any,
            data_config: Any,
            hf_model_type: str | None = None,
            **kwargs: Any,
        ) -> None:
            # verl wraps configs in DictConfigWrap(config=...) to keep hydra from resolving them.
            self.config = trainer_config.config
            self.rollout_config = self.config.actor_rollout_ref.rollout
            self.server_manager = server_manager
            self.tokenizer = tokenizer
            self.processor = processor
            self.dataset_cls = dataset_cls
            self.data_config = data_config.config

        async def run(self, sampling_params: dict[str, Any], **kwargs: Any) -> AgentLoopOutput:
            raise NotImplementedError

    _agent_loop_registry: dict[str, dict] = {}  # type: ignore[no-redef]

    def register(agent_name: str):  # type: ignore[no-redef]
        def decorator(subclass: type) -> type:
            _agent_loop_registry[agent_name] = {
                "_target_": f"{subclass.__module__}.{subclass.__qualname__}"
            }
            return subclass

        return decorator


__all__ = ["HAVE_VERL", "AgentLoopBase", "AgentLoopOutput", "_agent_loop_registry", "register"]
