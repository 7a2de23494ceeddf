"""(P)ReLU MLP experts and parameter counting.

Depth follows Wang & E's convention: an ``l``-layer network has ``l`` affine maps, so a
"2-layer" network has one hidden layer of width ``m``.
"""

from __future__ import annotations

import torch
from torch import nn

from .. import validate
from ..validate import DTYPE


class PReLU(nn.Module):
    """sigma_a(x) = max(x, a x) with a trainable slope per layer (Kratsios et al.); a = 0 is ReLU."""

    def __init__(self, slope: float = 0.25):
        super().__init__()
        self.a = nn.Parameter(torch.tensor(float(slope)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.maximum(x, self.a * x)


class MLP(nn.Module):
    """Fully connected (P)ReLU network d_in -> width -> ... -> d_out with ``depth`` affine maps."""

    def __init__(self, d_in: int, d_out: int, width: int, depth: int = 2,
                 activation: str = "relu", dtype: torch.dtype = torch.float32):
        super().__init__()
        self.d_in = validate.integer(d_in, "d_in", low=1)
        self.d_out = validate.integer(d_out, "d_out", low=1)
        self.width = validate.integer(width, "width", low=1)
        self.depth = validate.integer(depth, "depth", low=1)
        validate.choice(activation, "activation", ("relu", "prelu"))
        dims = [d_in] + [width] * (depth - 1) + [d_out]
        layers: list[nn.Module] = []
        for i in range(depth):
            layers.append(nn.Linear(dims[i], dims[i + 1], dtype=dtype))
            if i < depth - 1:
                layers.append(nn.ReLU() if activation == "relu" else PReLU())
        self.net = nn.Sequential(*layers)

    @property
    def linears(self) -> list[nn.Linear]:
        return [m for m in self.net if isinstance(m, nn.Linear)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def n_params(module: nn.Module) -> int:
    """Number of stored scalar parameters."""
    return sum(p.numel() for p in module.parameters())


def n_nonzero(module: nn.Module) -> int:
    """Number of nonzero parameters (what a sparse format would store)."""
    return sum(int((p != 0).sum()) for p in module.parameters())


def mlp_param_count(d_in: int, d_out: int, width: int, depth: int, activation: str = "relu") -> int:
    """Closed form of ``n_params(MLP(...))``: weights and biases (+ one slope per hidden layer)."""
    dims = [d_in] + [width] * (depth - 1) + [d_out]
    count = sum(dims[i] * dims[i + 1] + dims[i + 1] for i in range(depth))
    return count + (depth - 1 if activation == "prelu" else 0)


def relu_mlp_from_weights(weights: list[torch.Tensor], biases: list[torch.Tensor]) -> MLP:
    """Build an ``MLP`` (ReLU, float64) whose affine maps are exactly the given matrices.

    ``weights[i]`` has shape (out_i, in_i); hidden widths must be equal, as in ``MLP``.
    Used by the closed-form constructions, which write weights rather than train them.
    """
    if len(weights) != len(biases) or not weights:
        raise ValueError(f"expected equally many weights and biases (>= 1), "
                         f"got {len(weights)} and {len(biases)}")
    widths = {w.shape[0] for w in weights[:-1]}
    if len(widths) > 1:
        raise ValueError(f"expected equal hidden widths, got {[w.shape[0] for w in weights[:-1]]}")
    d_in, d_out = weights[0].shape[1], weights[-1].shape[0]
    width = weights[0].shape[0] if len(weights) > 1 else 1
    net = MLP(d_in, d_out, width, depth=len(weights), dtype=torch.float64)
    with torch.no_grad():
        for lin, w, b in zip(net.linears, weights, biases, strict=True):
            if lin.weight.shape != w.shape or lin.bias.shape != b.shape:
                raise ValueError(f"expected layer shapes {tuple(lin.weight.shape)}/{tuple(lin.bias.shape)}, "
                                 f"got {tuple(w.shape)}/{tuple(b.shape)}")
            lin.weight.copy_(w)
            lin.bias.copy_(b)
    return net


def affine_relu_mlp(W, b) -> MLP:
    """The affine map y = x W^T + b as a one-hidden-layer ReLU MLP of width 2 d_out (float64).

    Exact up to rounding, from y = ReLU(y) - ReLU(-y): hidden weights [W; -W], biases [b; -b],
    output weights [I, -I], output bias 0.
    """
    W = validate.tensor(W, "W", ndim=2).to(DTYPE)
    b = validate.tensor(b, "b", ndim=1, last=W.shape[0]).to(DTYPE)
    eye = torch.eye(W.shape[0], dtype=DTYPE)
    return relu_mlp_from_weights([torch.cat([W, -W]), torch.cat([eye, -eye], dim=1)],
                                 [torch.cat([b, -b]), torch.zeros(W.shape[0], dtype=DTYPE)])


def zero_mlp(d_in: int, d_out: int, width: int, depth: int) -> MLP:
    """An MLP with every weight and bias 0 (outputs 0)."""
    net = MLP(d_in, d_out, width, depth, dtype=DTYPE)
    with torch.no_grad():
        for p in net.parameters():
            p.zero_()
    return net


def merge_mlps_sum(a: MLP, b: MLP) -> MLP:
    """One MLP computing a(x) + b(x): hidden layers side by side (block-diagonal), outputs added.
    Needs equal depth, input and output sizes."""
    if a.depth != b.depth or a.d_in != b.d_in or a.d_out != b.d_out:
        raise ValueError(f"expected two MLPs of equal depth and sizes, got depth {a.depth} "
                         f"{a.d_in}->{a.d_out} and depth {b.depth} {b.d_in}->{b.d_out}")
    la, lb = a.linears, b.linears
    weights, biases = [], []
    for k, (p, q) in enumerate(zip(la, lb, strict=True)):
        wp, wq = p.weight.detach().to(DTYPE), q.weight.detach().to(DTYPE)
        bp, bq = p.bias.detach().to(DTYPE), q.bias.detach().to(DTYPE)
        if k == 0:
            weights.append(torch.cat([wp, wq]))
            biases.append(torch.cat([bp, bq]))
        elif k == len(la) - 1:
            weights.append(torch.cat([wp, wq], dim=1))
            biases.append(bp + bq)
        else:
            weights.append(torch.block_diag(wp, wq))
            biases.append(torch.cat([bp, bq]))
    return relu_mlp_from_weights(weights, biases)
