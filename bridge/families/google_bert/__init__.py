"""google-research BERT TF1 checkpoints (``google-bert``), transformers' BERT's forward check too."""
