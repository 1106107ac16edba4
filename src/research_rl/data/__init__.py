"""Dataset preparation: released QA files and hub datasets into the project's question schema."""
