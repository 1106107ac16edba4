"""Scaling out: multi-process generation (lockstep collective calls), TRL's vLLM modes, and the
verl agent loop for multi-node training. Nothing here imports vLLM or verl at module level."""
