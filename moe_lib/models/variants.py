"""Architectural variants from Wang & E's "practical suggestions" (Sec. 4), as exact rewrites of a
``DeepMoE`` or as small modules:

- ``DenseThenMoE`` (h_moe o h_dense, as in GShard/GLaM) and ``SharedRoutedMoE`` (one always-on
  shared expert plus E routed experts, as in DeepSeekMoE/Qwen2), the rewrites
  ``as_dense_then_moe`` / ``as_shared_routed`` of a two-layer MoE whose first layer has identical
  experts, and ``merge_shared``, which turns a shared+routed layer back into a plain MoE layer;
- ``AutoencoderExpert``: f_low o Enc with a linear encoder R^D -> R^d, its parameter count
  (D + 1) d + P(f_low) beside a full expert's (``linear_autoencoder`` and
  ``train_linear_autoencoder`` are in ``moe_lib.fitting.train``).

The routers of that section (``MLPRouter``, ``voronoi_gate``) are in ``moe_lib.models.routing``.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn

from .. import validate
from .experts import MLP, merge_mlps_sum, mlp_param_count, n_params, zero_mlp
from .moe import DeepMoE, MoE

# ----------------------------------------------------------------------------------------------
# routers


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


