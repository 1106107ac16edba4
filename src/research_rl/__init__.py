"""research-rl: train language models to reason with search through reinforcement learning.

The engine-agnostic core (the ReSearch semantics) lives in the top-level modules:
``templates`` (prompts), ``tags`` (the tag protocol), ``rollout`` (the search-interleaved
rollout state machine), ``trajectory`` (its output), ``reward`` (the rule reward), ``metrics`` and
``grpo`` (the reference GRPO objective). Subpackages are adapters around it: ``retrieval``
(indexes, server, clients), ``backends`` (generation engines), ``training`` (TRL), ``scale``
(vLLM, verl), ``data``, ``evaluation``, ``report`` and ``demo``.
"""

__version__ = "0.1.0"
