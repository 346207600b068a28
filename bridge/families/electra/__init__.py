"""google-research ELECTRA TF1 checkpoints (``electra``)."""
