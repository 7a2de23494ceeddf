"""MoMLP (Kratsios et al., P1): a hard router sends each input to exactly one expert MLP.

    Phi(x) = E_{k(x)}(x),   k(x) = router(x)  (one expert per input, weight 1, no blending)

Experts come in *banks*: a bank holds many experts of one kind with their parameters stacked along
a first axis, and evaluates any batch of (input, expert) pairs with batched tensor ops. A forward
pass routes the batch once, then makes one call per bank (never one per expert):

- ``ConstantBank``: E_k(x) = b_k (one bias per output; the experts of construction E0);
- ``StackedMLPBank``: identical (P)ReLU MLP architectures, weights stacked (K, out, in), evaluated
  by gathering each input's weights (one ``bmm`` per layer);
- ``ConcatBank``: experts whose output is the concatenation of several banks' outputs (one scalar
  expert per output coordinate, same cell);
- any module with ``n_experts``, ``d_out``, ``params_per_expert`` and ``forward(x, local_idx)``
  (the hat-interpolation experts of ``moe_lib.constructions.p1_lipschitz`` are one).

Parameter accounting: ``loaded_parameters`` = the largest expert's parameters + the numbers the
router reads on one path (``router.path_numbers``; 0 for a router that does not declare it).
"""

from __future__ import annotations

import torch
from torch import nn

from .. import validate


def group_by_expert(idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sort a batch by expert: (order (B,), experts present (U,), counts (U,)); stable."""
    idx = validate.tensor(idx, "idx", ndim=1)
    order = torch.argsort(idx, stable=True)
    experts, counts = torch.unique_consecutive(idx[order], return_counts=True)
    return order, experts, counts


class ConstantBank(nn.Module):
    """K constant experts E_k(x) = values[k] in R^d_out; ``d_out`` parameters per expert."""

    def __init__(self, values: torch.Tensor):
        super().__init__()
        values = validate.tensor(values, "values")
        if values.ndim == 1:
            values = values[:, None]
        if values.ndim != 2:
            raise ValueError(f"values: expected shape (K,) or (K, d_out), got {tuple(values.shape)}")
        self.values = nn.Parameter(values.clone(), requires_grad=False)
        self.n_experts, self.d_out = values.shape
        self.params_per_expert = self.d_out
        self.depth, self.width = 1, 1      # an output layer with a bias and no input weights

    def forward(self, x: torch.Tensor, local_idx: torch.Tensor) -> torch.Tensor:
        return self.values[local_idx]


class StackedMLPBank(nn.Module):
    """K (P)ReLU MLPs of one architecture ``widths`` = [d_in, h_1, ..., d_out], weights stacked.

    Hidden activation max(z, a z) with one slope a per expert and layer (a = 0: ReLU).
    """

    def __init__(self, weights: list[torch.Tensor], biases: list[torch.Tensor],
                 slopes: torch.Tensor | None = None):
        super().__init__()
        if not weights or len(weights) != len(biases):
            raise ValueError(f"weights, biases: expected equally long non-empty lists, got "
                             f"{len(weights)} and {len(biases)}")
        K = weights[0].shape[0]
        for i, (w, b) in enumerate(zip(weights, biases, strict=True)):
            w = validate.tensor(w, f"weights[{i}]", ndim=3)
            b = validate.tensor(b, f"biases[{i}]", ndim=2)
            if w.shape[0] != K or b.shape != (K, w.shape[1]):
                raise ValueError(f"biases[{i}]: expected shape {(K, w.shape[1])} for weights of "
                                 f"shape {tuple(w.shape)}, got {tuple(b.shape)}")
            if i and w.shape[2] != weights[i - 1].shape[1]:
                raise ValueError(f"weights[{i}]: expected input size {weights[i - 1].shape[1]}, "
                                 f"got {w.shape[2]}")
        self.weights = nn.ParameterList([nn.Parameter(w.clone()) for w in weights])
        self.biases = nn.ParameterList([nn.Parameter(b.clone()) for b in biases])
        n_hidden = len(weights) - 1
        if slopes is None:
            slopes = torch.zeros(K, n_hidden, dtype=weights[0].dtype)
        slopes = validate.tensor(slopes, "slopes", ndim=2)
        if slopes.shape != (K, n_hidden):
            raise ValueError(f"slopes: expected shape {(K, n_hidden)}, got {tuple(slopes.shape)}")
        self.slopes = nn.Parameter(slopes.clone())
        self.n_experts = K
        self.d_in, self.d_out = weights[0].shape[2], weights[-1].shape[1]
        self.depth = len(weights)
        self.width = max(w.shape[1] for w in weights[:-1]) if n_hidden else self.d_out
        self.params_per_expert = (sum(w[0].numel() + b[0].numel()
                                      for w, b in zip(weights, biases, strict=True)) + n_hidden)

    def forward(self, x: torch.Tensor, local_idx: torch.Tensor) -> torch.Tensor:
        h = x.to(self.weights[0].dtype)[:, :, None]
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            h = torch.bmm(w[local_idx], h) + b[local_idx][:, :, None]
            if i < len(self.weights) - 1:
                a = self.slopes[local_idx, i][:, None, None]
                h = torch.maximum(h, a * h)
        return h[:, :, 0]


class ConcatBank(nn.Module):
    """Expert k outputs the concatenation of expert k of each bank (all banks have K experts)."""

    def __init__(self, banks: list[nn.Module]):
        super().__init__()
        if not banks:
            raise ValueError("banks: expected a non-empty list of expert banks, got []")
        K = banks[0].n_experts
        if any(b.n_experts != K for b in banks):
            raise ValueError(f"banks: expected the same number of experts in every bank, got "
                             f"{[b.n_experts for b in banks]}")
        self.banks = nn.ModuleList(banks)
        self.n_experts = K
        self.d_out = sum(b.d_out for b in banks)
        self.params_per_expert = sum(b.params_per_expert for b in banks)
        self.depth = max(b.depth for b in banks)
        self.width = sum(b.width for b in banks)

    def forward(self, x: torch.Tensor, local_idx: torch.Tensor) -> torch.Tensor:
        return torch.cat([b(x, local_idx) for b in self.banks], dim=1)


class MoMLP(nn.Module):
    """Hard-routed mixture: ``router`` picks one expert per input among the banks' experts.

    Experts are numbered bank after bank: bank 0 holds experts 0..K_0-1, bank 1 the next K_1, ...
    The router's ``n_experts`` must equal the total.
    """

    def __init__(self, router: nn.Module, banks: list[nn.Module] | nn.Module):
        super().__init__()
        if isinstance(banks, nn.Module):
            banks = [banks]
        if not banks:
            raise ValueError("banks: expected at least one expert bank, got none")
        total = sum(b.n_experts for b in banks)
        if getattr(router, "n_experts", None) != total:
            raise ValueError(f"router: expected n_experts = {total} (the banks' experts), got "
                             f"{getattr(router, 'n_experts', None)}")
        d_out = {b.d_out for b in banks}
        if len(d_out) != 1:
            raise ValueError(f"banks: expected one output size, got {sorted(d_out)}")
        self.router = router
        self.banks = nn.ModuleList(banks)
        self.n_experts = total
        self.d_out = d_out.pop()
        sizes = torch.tensor([b.n_experts for b in banks])
        self.register_buffer("bank_of", torch.repeat_interleave(torch.arange(len(banks)), sizes))
        offsets = torch.cumsum(sizes, 0) - sizes
        self.register_buffer("local_of", torch.arange(total) - offsets[self.bank_of])

    def route(self, x: torch.Tensor) -> torch.Tensor:
        r = self.router(x)
        if r.idx.shape[1] != 1:
            raise ValueError(f"router: expected hard routing (one expert per input), got k = "
                             f"{r.idx.shape[1]}")
        return r.idx[:, 0]

    def forward(self, x: torch.Tensor, idx: torch.Tensor | None = None) -> torch.Tensor:
        """Phi(x) (B, d_out); ``idx`` (B,) skips routing when the cells are already known."""
        x = validate.tensor(x, "x", ndim=2)
        idx = self.route(x) if idx is None else idx
        if len(self.banks) == 1:
            return self.banks[0](x, idx)
        out = None
        bank = self.bank_of[idx]
        for b, module in enumerate(self.banks):      # one call per bank, never per expert
            sel = torch.nonzero(bank == b)[:, 0]
            if sel.numel() == 0:
                continue
            y = module(x[sel], self.local_of[idx[sel]])
            if out is None:
                out = torch.zeros(x.shape[0], self.d_out, dtype=y.dtype)
            out[sel] = y
        return out

    def expert_parameters(self) -> list[int]:
        """Parameters of one expert of each bank (all experts of a bank have the same count)."""
        return [int(b.params_per_expert) for b in self.banks]

    @property
    def router_path_numbers(self) -> int:
        return int(getattr(self.router, "path_numbers", 0))

    def loaded_parameters(self) -> int:
        """Largest expert + the router numbers read on one path: what one input needs in memory."""
        return max(self.expert_parameters()) + self.router_path_numbers

    def total_expert_parameters(self) -> int:
        return sum(int(b.params_per_expert) * b.n_experts for b in self.banks)
