"""The embedded demo: a synthetic knowledge world, a tiny policy, format training and a GRPO run."""
