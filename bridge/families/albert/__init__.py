"""google-research ALBERT TF1 checkpoints (``albert``)."""
