"""One call seeds every random source a chapter uses."""

from __future__ import annotations

import random

import numpy as np
import torch


def seed_everything(seed: int, threads: int | None = None) -> np.random.Generator:
    """Seed python, numpy and torch; optionally fix torch's CPU threads. Returns a numpy Generator."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if threads is not None:
        torch.set_num_threads(threads)
    return np.random.default_rng(seed)
