"""Training: padded session batches, the training loop, checkpoints and early stopping."""
