"""Architectural variants from Wang & E's "practical suggestions" (Sec. 4), as exact rewrites of a
``DeepMoE`` or as small modules:

- ``MLPRouter``: a nonlinear router, top-k of the scores of a ReLU MLP (a one-layer MoE with this
  router does what the two-layer construction does with its first layer and linear gate);
- ``voronoi_gate``: the linear top-1 gate with scores <c_i, x> - ||c_i||^2 / 2 on the input
  (x, 1) (the bias rides on a constant coordinate, since W_R x has none), i.e. nearest centre;
- ``DenseThenMoE`` (h_moe o h_dense, as in GShard/GLaM) and ``SharedRoutedMoE`` (one always-on
  shared expert plus E routed experts, as in DeepSeekMoE/Qwen2), the rewrites
  ``as_dense_then_moe`` / ``as_shared_routed`` of a two-layer MoE whose first layer has identical
  experts, and ``merge_shared``, which turns a shared+routed layer back into a plain MoE layer;
- ``AutoencoderExpert``: f_low o Enc with a linear encoder R^D -> R^d, its parameter count
  (D + 1) d + P(f_low) beside a full expert's; ``linear_autoencoder`` (the exact minimiser of
  the reconstruction loss, by PCA) and ``train_linear_autoencoder`` (the same loss by Adam).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn

from . import validate
from .experts import MLP, mlp_param_count, n_params, relu_mlp_from_weights
from .moe import DeepMoE, MoE
from .routing import Routing, TopKGate, top_k
from .train import dataset_sampler, fit

DTYPE = torch.float64


# ----------------------------------------------------------------------------------------------
# routers


class MLPRouter(nn.Module):
    """Nonlinear router: scores = net(x) (E of them), then top-k with the softmax over the selected
    scores (the same rule as the linear gate, ties to the lower index)."""

    def __init__(self, net: MLP, k: int = 1):
        super().__init__()
        if not isinstance(net, MLP):
            raise ValueError(f"net: expected a moe_lib.MLP computing the scores, "
                             f"got {type(net).__name__}")
        self.net = net
        self.n_experts = net.d_out
        self.k = validate.integer(k, "k", low=1, high=self.n_experts)

    def scores(self, x: torch.Tensor) -> torch.Tensor:
        x = validate.tensor(x, "x", ndim=2, last=self.net.d_in)
        return self.net(x)

    def forward(self, x: torch.Tensor) -> Routing:
        return top_k(self.scores(x), self.k)


def voronoi_gate(centres) -> TopKGate:
    """Bias-free linear top-1 gate on the augmented input (x, 1) with scores
    <c_i, x> - ||c_i||^2 / 2, so argmax_i = argmin_i ||x - c_i|| (the Voronoi cell)."""
    C = validate.tensor(centres, "centres", ndim=2).to(DTYPE)
    gate = TopKGate(C.shape[1] + 1, C.shape[0], k=1, bias=False, dtype=DTYPE)
    with torch.no_grad():
        gate.linear.weight.copy_(torch.cat([C, -(C ** 2).sum(dim=1, keepdim=True) / 2], dim=1))
    return gate


def with_constant(x) -> torch.Tensor:
    """(x, 1): the input of ``voronoi_gate``."""
    x = validate.tensor(x, "x", ndim=2).to(DTYPE)
    return torch.cat([x, torch.ones(x.shape[0], 1, dtype=DTYPE)], dim=1)


# ----------------------------------------------------------------------------------------------
# dense-then-MoE and shared + routed


class DenseThenMoE(nn.Module):
    """h_moe o h_dense: a dense network followed by one MoE layer."""

    def __init__(self, dense: nn.Module, moe: MoE):
        super().__init__()
        if getattr(dense, "d_out", moe.d_in) != moe.d_in:
            raise ValueError(f"dense: expected output size {moe.d_in} (the MoE layer's input), "
                             f"got {dense.d_out}")
        self.dense = dense
        self.moe = moe

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.moe(self.dense(x))


class SharedRoutedMoE(nn.Module):
    """y = shared(x) + sum_{k in K(x)} alpha_k(x) f_k(x): one expert every input uses, plus E
    routed experts behind ``router``."""

    def __init__(self, shared: nn.Module, experts: Sequence[nn.Module], router: nn.Module,
                 d_in: int, d_out: int):
        super().__init__()
        self.shared = shared
        self.routed = MoE(experts, router, d_in, d_out)

    @property
    def d_in(self) -> int:
        return self.routed.d_in

    @property
    def d_out(self) -> int:
        return self.routed.d_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shared(x) + self.routed(x)

    def active_params(self) -> int:
        return n_params(self.shared) + self.routed.active_params()


def zero_mlp(d_in: int, d_out: int, width: int, depth: int) -> MLP:
    """An MLP with every weight and bias 0 (outputs 0)."""
    net = MLP(d_in, d_out, width, depth, dtype=DTYPE)
    with torch.no_grad():
        for p in net.parameters():
            p.zero_()
    return net


def _identical_experts(layer: MoE) -> bool:
    ref = [p.detach() for p in layer.experts[0].parameters()]
    return all(all(torch.equal(a, b.detach()) for a, b in zip(ref, e.parameters(), strict=True))
               for e in layer.experts[1:])


def as_dense_then_moe(net: DeepMoE) -> DenseThenMoE:
    """A two-layer MoE whose first layer has identical experts, as h_moe o h_dense."""
    if len(net.layers) != 2:
        raise ValueError(f"net: expected 2 MoE layers, got {len(net.layers)}")
    first, second = net.layers
    if not _identical_experts(first):
        raise ValueError("net: expected identical experts in layer 1 (a dense layer in disguise)")
    return DenseThenMoE(copy.deepcopy(first.experts[0]), copy.deepcopy(second))


def as_shared_routed(net: DeepMoE) -> nn.Sequential:
    """The same two-layer MoE as two shared+routed layers: layer 1 = shared dense block with zero
    routed experts, layer 2 = zero shared expert with the routed experts and gate of layer 2 (the
    zero networks have width 1 and the depth of the networks they sit beside)."""
    dense = as_dense_then_moe(net)
    first, second = net.layers
    block = dense.dense
    zeros1 = [zero_mlp(block.d_in, block.d_out, 1, block.depth) for _ in range(first.n_experts)]
    l1 = SharedRoutedMoE(block, zeros1, copy.deepcopy(first.router), first.d_in, first.d_out)
    shared2 = zero_mlp(second.d_in, second.d_out, 1, second.experts[0].depth)
    l2 = SharedRoutedMoE(shared2, [copy.deepcopy(e) for e in second.experts],
                         copy.deepcopy(second.router), second.d_in, second.d_out)
    return nn.Sequential(l1, l2)


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


def merge_shared(layer: SharedRoutedMoE) -> MoE:
    """The plain MoE layer with experts shared + f_i (``merge_mlps_sum``) and the same router:
    a shared+routed layer is a member of the paper's class with wider experts."""
    experts = [merge_mlps_sum(layer.shared, e) for e in layer.routed.experts]
    return MoE(experts, copy.deepcopy(layer.routed.router), layer.d_in, layer.d_out)


# ----------------------------------------------------------------------------------------------
# autoencoder experts


class AutoencoderExpert(nn.Module):
    """f_low(Enc(x)) with Enc(x) = W x + b linear R^D -> R^d and f_low a small ReLU MLP on R^d."""

    def __init__(self, encoder: nn.Linear, f_low: MLP):
        super().__init__()
        if encoder.out_features != f_low.d_in:
            raise ValueError(f"f_low: expected input size {encoder.out_features} (the code size), "
                             f"got {f_low.d_in}")
        self.encoder = encoder
        self.f_low = f_low

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.f_low(self.encoder(x))


def autoencoder_expert_params(D: int, d: int, width: int, depth: int = 2) -> dict:
    """Parameter counts: encoder (D + 1) d, f_low = ``mlp_param_count(d, 1, width, depth)``, their
    sum, and a full expert on R^D of width D (the O(D^2) expert of the remark) with the ratio."""
    D = validate.integer(D, "D", low=1)
    d = validate.integer(d, "d", low=1, high=D)
    enc = (D + 1) * d
    low = mlp_param_count(d, 1, width, depth)
    full = mlp_param_count(D, 1, D, depth)
    return {"encoder": enc, "f_low": low, "total": enc + low, "full": full,
            "ratio": (enc + low) / full}


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
