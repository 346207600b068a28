"""Mesh TensorFlow T5 / mT5 checkpoints (``t5``)."""
