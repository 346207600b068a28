"""Keras layers against a PyTorch twin (``keras``)."""
