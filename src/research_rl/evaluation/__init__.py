"""Evaluation: methods (research, direct, rag), metrics, LLM judge, tables."""
