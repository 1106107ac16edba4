"""GRPO training: a thin adapter from the core's rollouts to TRL's GRPOTrainer."""
