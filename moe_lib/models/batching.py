"""Chunked evaluation: one helper for every "run f on many rows, a block at a time"."""

from __future__ import annotations

from collections.abc import Callable

import torch

from .. import validate

#: Rows per block when features or networks are evaluated on many points.
CHUNK = 2048


def apply_in_chunks(f: Callable, x: torch.Tensor, chunk: int = CHUNK, dim: int = 0):
    """torch.cat of f on consecutive blocks of ``chunk`` rows of x along ``dim``.

    A width-m layer on N points makes an N x m intermediate; in blocks it stays in cache, which
    is several times faster for N ~ 1e5 (and uses far less memory). If f returns a tuple of
    tensors, each is concatenated (along the same ``dim``) and a tuple is returned.
    """
    chunk = validate.integer(chunk, "chunk", low=1)
    outs = [f(x.narrow(dim, s, min(chunk, x.shape[dim] - s))) for s in range(0, x.shape[dim], chunk)]
    if outs and isinstance(outs[0], tuple):
        return tuple(torch.cat(parts, dim=dim) for parts in zip(*outs, strict=True))
    return torch.cat(outs, dim=dim)
