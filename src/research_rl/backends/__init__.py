"""Generation backends: thin engines behind the core's generation protocol.

``backends.hf.HFBackend`` (transformers; imports torch, so import it from its module) and
``ScriptedBackend`` (replays given completions, for tests).
"""

from research_rl.backends.base import (
    GenerationBackend,
    GenerationOutput,
    GenerationRequest,
    SamplingParams,
)
from research_rl.backends.scripted import ScriptedBackend, ScriptError

__all__ = [
    "GenerationBackend",
    "GenerationOutput",
    "GenerationRequest",
    "SamplingParams",
    "ScriptError",
    "ScriptedBackend",
]
