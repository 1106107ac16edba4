"""Generation backends: thin engines behind the core's generation protocol."""

from research_rl.backends.base import (
    GenerationBackend,
    GenerationOutput,
    GenerationRequest,
    SamplingParams,
)

__all__ = ["GenerationBackend", "GenerationOutput", "GenerationRequest", "SamplingParams"]
