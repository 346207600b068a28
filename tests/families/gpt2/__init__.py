"""The openai-gpt2 family: its CLI road, its torch-free targets, its golden check reports, its fixture maker."""
