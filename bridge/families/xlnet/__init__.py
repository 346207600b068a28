"""zihangdai/xlnet TF1 checkpoints (``xlnet``)."""
