"""PyTorch side of `bridge unused`: ``trace`` (a model run on its batch: reads, gradients, the restore call),
``watch`` (``bridge.watch`` inside the user's loop) and ``ddp`` (DistributedDataParallel's own verdict)."""
