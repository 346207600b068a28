"""openai/gpt-2 TF1 checkpoints (``openai-gpt2``)."""
