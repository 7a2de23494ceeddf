"""One call seeds every random source a chapter uses."""

from __future__ import annotations

import random

import numpy as np
import torch

from . import validate


def seed_everything(seed: int, threads: int | None = None) -> np.random.Generator:
    """Seed python, numpy and torch; optionally fix torch's CPU threads. Returns a numpy Generator."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if threads is not None:
        torch.set_num_threads(threads)
    return np.random.default_rng(seed)


def generator(seed: int | torch.Generator) -> torch.Generator:
    """A torch Generator: ``seed`` itself if it is one, else a new one seeded with the integer."""
    if isinstance(seed, torch.Generator):
        return seed
    seed = validate.integer(seed, "seed", low=0)
    return torch.Generator().manual_seed(seed)
