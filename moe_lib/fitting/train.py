"""A small, seeded fit loop: Adam on the square loss, fresh minibatches, optional early stop.

    model = stacked_class_members([2, 2, 2], n_experts=3, width=32, seeds=[0, 1, 2])
    result = fit(model, sampler, steps=5000, batch_size=128, lr=1e-3)
    result.history          # (steps_done, S) numpy array: each model's minibatch MSE per step
    test = mse(model, x_test, y_test)   # (S,) numpy array

Works for a ``StackedMoE`` (S models trained at once, inputs (S, N, d)) and for any single model
``nn.Module`` mapping (N, d) -> (N, d_out) (e.g. ``moe_lib.DeepMoE``), treated as S = 1.

Data. ``sampler(n, generator) -> (x, y)`` returns n fresh training pairs, x (n, d_in) and
y (n, d_out), drawn with the given ``torch.Generator``. Each model s draws its own minibatches
from its own generator seeded with ``seeds[s]``, so model s's training run does not depend on
which other models share the stack. ``dataset_sampler(x, y)`` turns a fixed training set into a
sampler (minibatches drawn uniformly with replacement).

Drawing many steps at once. A sampler may also have ``draw_steps(n, generator, count) -> (x, y)``
of shapes (count, n, d_in) and (count, n, d_out), the pairs of ``count`` successive calls
``sampler(n, generator)``; ``function_sampler(..., serial=True)`` makes one. ``fit`` then draws a
block of steps per call, once per distinct data seed (models with equal seeds share the stream),
instead of S calls per step: the same minibatches, with less per-step overhead.

Loss. Model s minimises the mean over the batch and the output coordinates of (model - y)^2
(``torch.nn.MSELoss``). The stack minimises the *sum* of the S losses, whose gradient with respect
to model s's weights is model s's own gradient; Adam is coordinate-wise, so training S models
together is the same as training each alone.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .. import validate
from ..models.batching import apply_in_chunks
from ..progress import progress
from ..validate import DTYPE

Sampler = Callable[[int, torch.Generator], tuple[torch.Tensor, torch.Tensor]]


@dataclass
class FitResult:
    """``history``: (steps_done, S) minibatch MSE of each model per step; ``stopped_early``."""

    history: np.ndarray
    steps: int
    stopped_early: bool

    def final(self, window: int = 50) -> np.ndarray:
        """Each model's mean minibatch loss over the last ``window`` steps, shape (S,)."""
        window = validate.integer(window, "window", low=1)
        return self.history[-window:].mean(axis=0)


def _stacked(model: nn.Module) -> bool:
    return hasattr(model, "gate_w") and hasattr(model, "n_models")


def _batch(sampler: Sampler, n: int, gens: list[torch.Generator], stacked: bool,
           dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys = [], []
    for g in gens:
        x, y = sampler(n, g)
        if x.ndim != 2 or y.ndim != 2 or x.shape[0] != n or y.shape[0] != n:
            raise ValueError(f"sampler: expected x (n, d_in) and y (n, d_out) with n = {n}, "
                             f"got {tuple(x.shape)} and {tuple(y.shape)}")
        xs.append(x)
        ys.append(y)
    if stacked:
        return torch.stack(xs).to(dtype), torch.stack(ys).to(dtype)
    return xs[0].to(dtype), ys[0].to(dtype)


class _Stream:
    """The minibatches of ``fit``, one per step: S sampler calls per step, or, for a sampler with
    ``draw_steps``, blocks of steps drawn once per distinct seed (the same pairs)."""

    BLOCK_NUMBERS = 1 << 22          # numbers per block (all models, x and y) after the first

    def __init__(self, sampler: Sampler, n: int, seeds: list[int], stacked: bool,
                 dtype: torch.dtype):
        self.sampler, self.n, self.stacked, self.dtype = sampler, n, stacked, dtype
        self.draw_steps = getattr(sampler, "draw_steps", None)
        distinct = list(dict.fromkeys(seeds)) if self.draw_steps is not None else seeds
        self.gens = [torch.Generator().manual_seed(validate.integer(sd, "seed", low=0))
                     for sd in distinct]
        self.inverse = torch.tensor([distinct.index(sd) for sd in seeds])
        self.block: tuple[torch.Tensor, torch.Tensor] | None = None
        self.count, self.used = 16, 0

    def next(self, remaining: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self.draw_steps is None:
            return _batch(self.sampler, self.n, self.gens, self.stacked, self.dtype)
        if self.block is None or self.used == len(self.block[0]):
            self._refill(min(self.count, remaining))
        i, self.used = self.used, self.used + 1
        return self.block[0][i], self.block[1][i]

    def _refill(self, count: int) -> None:
        xs, ys = [], []
        for g in self.gens:
            x, y = self.draw_steps(self.n, g, count)
            if x.ndim != 3 or y.ndim != 3 or x.shape[:2] != (count, self.n) \
                    or y.shape[:2] != (count, self.n):
                raise ValueError(f"sampler.draw_steps: expected x (count, n, d_in) and y "
                                 f"(count, n, d_out) with count = {count}, n = {self.n}, "
                                 f"got {tuple(x.shape)} and {tuple(y.shape)}")
            xs.append(x)
            ys.append(y)
        if self.stacked:      # (count, S, n, d): model s reads the stream of its seed
            x, y = (torch.stack(v, dim=1)[:, self.inverse].to(self.dtype) for v in (xs, ys))
        else:
            x, y = xs[0].to(self.dtype), ys[0].to(self.dtype)
        self.block, self.used = (x, y), 0
        per_step = x[0].numel() + y[0].numel()
        self.count = max(1, min(4096, self.BLOCK_NUMBERS // max(1, per_step)))


def _dtype(model: nn.Module) -> torch.dtype:
    for p in model.parameters():
        return p.dtype
    raise ValueError(f"model: expected a module with parameters, "
                     f"got {type(model).__name__} with none")


def fit(model: nn.Module, sampler: Sampler, steps: int, batch_size: int = 128, lr: float = 1e-3,
        seeds: Sequence[int] | None = None, target_loss: float | None = None,
        patience: int | None = None, window: int = 50, threads: int | None = 1,
        desc: str = "fit", lr_final: float | None = None) -> FitResult:
    """Train ``model`` in place with Adam (``lr``, default betas, fused kernel) on the square loss.

    Parameters
    ----------
    model : a ``StackedMoE`` (S models at once) or a single-model ``nn.Module``.
    sampler : ``sampler(n, generator) -> (x, y)``, fresh training pairs (see module docstring).
    steps : maximum number of Adam steps (one minibatch of ``batch_size`` per model per step).
    seeds : one data seed per model (default 0, 1, ..., S-1); seeds the minibatch generators only,
        the weights are seeded where the model is built (``stacked_class_members``).
    target_loss : early stop once every model's mean minibatch loss over the last ``window``
        steps is below this.
    patience : early stop once no model has improved its best ``window``-mean loss for this
        many steps.
    threads : ``torch.set_num_threads(threads)`` before training (None leaves it as is). One
        thread is fastest for these small tensors on a busy machine.
    lr_final : None (constant ``lr``) or the learning rate of the last step of a cosine decay:
        step k (0-based) uses lr_final + (lr - lr_final) (1 + cos(pi k / steps)) / 2.

    Returns a ``FitResult`` with the loss history. Raises ValueError on bad arguments, and if the
    loss becomes NaN or infinite (saying at which step).
    """
    steps = validate.integer(steps, "steps", low=1)
    batch_size = validate.integer(batch_size, "batch_size", low=1)
    lr = validate.positive(lr, "lr")
    window = validate.integer(window, "window", low=1)
    if lr_final is not None:
        lr_final = validate.positive(lr_final, "lr_final")
    if threads is not None:
        torch.set_num_threads(validate.integer(threads, "threads", low=1))
    if target_loss is not None:
        target_loss = validate.positive(target_loss, "target_loss")
    if patience is not None:
        patience = validate.integer(patience, "patience", low=1)
    if not callable(sampler):
        raise ValueError(f"sampler: expected a callable sampler(n, generator) -> (x, y), "
                         f"got {type(sampler).__name__}")
    stacked = _stacked(model)
    S = model.n_models if stacked else 1
    seeds = list(range(S)) if seeds is None else list(seeds)
    if len(seeds) != S:
        raise ValueError(f"seeds: expected one seed per model ({S}), got {len(seeds)}")
    dtype = _dtype(model)
    stream = _Stream(sampler, batch_size, seeds, stacked, dtype)
    params = list(model.parameters())
    opt = torch.optim.Adam(params, lr=lr, fused=True)
    history = np.empty((steps, S))
    best = np.full(S, np.inf)
    since_best = 0
    stopped = False
    done = 0
    model.train()
    for step in progress(range(steps), desc=desc, total=steps):
        if lr_final is not None:
            for group in opt.param_groups:
                group["lr"] = cosine_lr(step, steps, lr, lr_final)
        x, y = stream.next(steps - step)
        pred = model(x)
        if pred.shape != y.shape:
            raise ValueError(f"sampler: expected targets of the model's output shape "
                             f"{tuple(pred.shape)}, got {tuple(y.shape)}")
        per_model = ((pred - y) ** 2).mean(dim=(-2, -1)).reshape(S)
        loss = per_model.sum()
        if not bool(torch.isfinite(loss)):
            raise ValueError(f"fit: the loss became {float(loss.detach())} at step {step} "
                             f"(lr {lr} too large?)")
        for p in params:      # what opt.zero_grad(set_to_none=True) does, without its overhead
            p.grad = None
        loss.backward()
        opt.step()
        history[step] = per_model.detach().numpy()
        done = step + 1
        if done >= window and (target_loss is not None or patience is not None):
            recent = history[done - window:done].mean(axis=0)
            if target_loss is not None and bool((recent < target_loss).all()):
                stopped = True
                break
            if patience is not None:
                improved = recent < best
                best = np.minimum(best, recent)
                since_best = 0 if improved.any() else since_best + 1
                if since_best >= patience:
                    stopped = True
                    break
    model.eval()
    return FitResult(history[:done].copy(), done, stopped)


def cosine_lr(step: int, steps: int, lr: float, lr_final: float) -> float:
    """The learning rate of step ``step`` (0-based) of ``steps`` under a cosine decay from ``lr``
    (step 0) towards ``lr_final`` (reached after the last step)."""
    return lr_final + (lr - lr_final) * (1 + math.cos(math.pi * step / steps)) / 2


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    """Model outputs on x (N, d_in), in chunks: (S, N, d_out) for a stack, else (1, N, d_out)."""
    x = validate.tensor(x, "x", ndim=2)
    if _stacked(model):
        return model.predict(x, chunk=chunk)[0]
    dtype = _dtype(model)
    return apply_in_chunks(lambda xc: model(xc.to(dtype)), x, chunk)[None]


def mse(model: nn.Module, x: torch.Tensor, y: torch.Tensor, chunk: int = 4096) -> np.ndarray:
    """Each model's test MSE, mean over points and output coordinates of (model(x) - y)^2: (S,)."""
    x = validate.tensor(x, "x", ndim=2)
    y = validate.tensor(y, "y", ndim=2)
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x, y: expected the same number of rows, "
                         f"got {x.shape[0]} and {y.shape[0]}")
    pred = predict(model, x, chunk)
    if pred.shape[-1] != y.shape[-1]:
        raise ValueError(f"y: expected {pred.shape[-1]} output columns (the model's), "
                         f"got {y.shape[-1]}")
    return ((pred - y.to(pred.dtype)[None]) ** 2).mean(dim=(1, 2)).numpy()


def dataset_sampler(x: torch.Tensor, y: torch.Tensor) -> Sampler:
    """A sampler drawing minibatches uniformly with replacement from the fixed set (x, y)."""
    x = validate.tensor(x, "x", ndim=2)
    y = validate.tensor(y, "y", ndim=2)
    if x.shape[0] != y.shape[0] or x.shape[0] == 0:
        raise ValueError(f"x, y: expected the same positive number of rows, "
                         f"got {x.shape[0]} and {y.shape[0]}")

    def sample(n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        i = torch.randint(0, x.shape[0], (n,), generator=generator)
        return x[i], y[i]

    return sample


def function_sampler(draw_x: Callable[[int, torch.Generator], torch.Tensor],
                     target: Callable[[torch.Tensor], torch.Tensor],
                     serial: bool = False) -> Sampler:
    """A sampler of fresh pairs (x, target(x)) with x = draw_x(n, generator).

    ``serial=True`` declares that the rows of x are drawn one after another from the generator, so
    that draw_x(count * n, g) gives the rows of ``count`` successive calls draw_x(n, g), and that
    ``target`` acts row by row (true of ``torch.rand`` on a CPU generator; not of ``torch.randn``,
    which fills large tensors in another order). The sampler then also has ``draw_steps(n,
    generator, count)``, which ``fit`` uses to draw many steps at once.
    """

    def sample(n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        x = draw_x(n, generator)
        y = target(x)
        return x, (y[:, None] if y.ndim == 1 else y)

    def draw_steps(n: int, generator: torch.Generator,
                   count: int) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = sample(count * n, generator)
        return x.reshape(count, n, -1), y.reshape(count, n, -1)

    if serial:
        sample.draw_steps = draw_steps
    return sample


def linear_autoencoder(x, d: int) -> tuple[nn.Linear, nn.Linear, float]:
    """The affine Enc: R^D -> R^d and Dec: R^d -> R^D minimising mean ||Dec(Enc(x)) - x||^2 over
    the rows of x: Enc(x) = V_d^T (x - mu), Dec(z) = V_d z + mu with mu the mean and V_d the top d
    right singular vectors of the centred data (PCA; the optimal linear autoencoder, Eckart-Young).
    Returns (Enc, Dec, reconstruction mean squared error)."""
    x = validate.tensor(x, "x", ndim=2).to(DTYPE)
    d = validate.integer(d, "d", low=1, high=min(x.shape))
    mu = x.mean(dim=0)
    V = torch.linalg.svd(x - mu, full_matrices=False).Vh[:d]          # (d, D)
    enc = nn.Linear(x.shape[1], d, dtype=DTYPE)
    dec = nn.Linear(d, x.shape[1], dtype=DTYPE)
    with torch.no_grad():
        enc.weight.copy_(V)
        enc.bias.copy_(-V @ mu)
        dec.weight.copy_(V.T)
        dec.bias.copy_(mu)
        mse = float(((dec(enc(x)) - x) ** 2).sum(dim=1).mean())
    return enc, dec, mse


def train_linear_autoencoder(x, d: int, steps: int = 300, lr: float = 1e-2,
                             batch_size: int = 128, seed: int = 0) -> tuple[nn.Linear, float]:
    """Train Enc: R^D -> R^d and Dec: R^d -> R^D (both affine) with Adam on the reconstruction
    loss mean ||Dec(Enc(x)) - x||^2 over the rows of x; returns (Enc, final mean squared error)."""
    x = validate.tensor(x, "x", ndim=2).to(DTYPE)
    d = validate.integer(d, "d", low=1, high=x.shape[1])
    torch.manual_seed(validate.integer(seed, "seed", low=0))
    enc = nn.Linear(x.shape[1], d, dtype=DTYPE)
    dec = nn.Linear(d, x.shape[1], dtype=DTYPE)
    model = nn.Sequential(enc, dec)
    fit(model, dataset_sampler(x, x), steps=steps, batch_size=batch_size, lr=lr, seeds=[seed],
        threads=None, desc="autoencoder")
    with torch.no_grad():
        mse = float(((model(x) - x) ** 2).sum(dim=1).mean())
    return enc, mse
