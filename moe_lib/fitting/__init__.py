"""Fitting: the training loop, random features and parameter sweeps."""
