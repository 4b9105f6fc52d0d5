"""Training: the loop, checkpoints and the weight average."""
