"""The MoE layer with sparse dispatch, and its stack ``DeepMoE`` (Wang & E's class H^{L,E}_{l,m}).

y(x) = sum_{e in K(x)} alpha_e(x) f_e(x): only the experts in K(x) run on x. ``dense_forward`` runs
every expert on every input and masks; it is the reference the sparse path is tested against.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .. import validate
from .dispatch import grouped_forward
from .experts import MLP, n_params
from .routing import Routing, TopKGate


class MoE(nn.Module):
    """One MoE layer: a router choosing k of E experts per input, experts run only where routed."""

    def __init__(self, experts: Sequence[nn.Module], router: nn.Module, d_in: int, d_out: int,
                 dispatch: str = "loop"):
        super().__init__()
        self.dispatch = validate.choice(dispatch, "dispatch", ("loop", "grouped"))
        experts = list(experts)
        if not experts:
            raise ValueError("experts: expected at least one expert, got none")
        self.experts = nn.ModuleList(experts)
        self.router = router
        self.d_in = validate.integer(d_in, "d_in", low=1)
        self.d_out = validate.integer(d_out, "d_out", low=1)
        n_router = getattr(router, "n_experts", None)
        if n_router is None:
            raise ValueError(f"router: expected a router that declares n_experts, got "
                             f"{type(router).__name__} without it")
        if n_router != len(self.experts):
            raise ValueError(f"router: expected a router over {len(self.experts)} experts, "
                             f"got one over {n_router}")
        # the dtype of the weight matrices (scalar parameters such as a PReLU slope do not promote)
        dtypes = {p.dtype for f in self.experts for p in f.parameters() if p.ndim >= 2}
        if len(dtypes) > 1:
            raise ValueError(f"experts: expected one dtype for all experts, got {sorted(map(str, dtypes))}")
        self.dtype = dtypes.pop() if dtypes else None

    @property
    def n_experts(self) -> int:
        return len(self.experts)

    def _input(self, x: torch.Tensor) -> torch.Tensor:
        x = validate.tensor(x, "x", ndim=2, last=self.d_in)
        if self.dtype is not None and x.dtype != self.dtype:
            raise ValueError(f"x: expected dtype {self.dtype} (the experts' dtype), got {x.dtype}")
        return x

    def route(self, x: torch.Tensor) -> Routing:
        x = self._input(x)
        return self.router(x).checked(x.shape[0], self.n_experts, "router output")

    def forward(self, x: torch.Tensor, routing: Routing | None = None) -> torch.Tensor:
        """Sparse dispatch: each expert sees only the rows routed to it. ``dispatch="loop"`` runs one
        call per routed expert, so with k = 1 each row is its expert's output bit for bit;
        ``"grouped"`` (``dispatch.grouped_forward``) sorts tokens by expert and runs each expert on its
        block of rows (in inference, the experts in groups on threads; with autograd, as padded
        batched matmuls): much faster with many experts, equal up to rounding. An explicit
        ``routing`` is checked against x and the number of experts."""
        x = self._input(x)
        r = self.route(x) if routing is None else routing.checked(x.shape[0], self.n_experts)
        if self.dispatch == "grouped":
            return grouped_forward(x, r, self.experts, self.d_out)
        n, k = r.idx.shape
        out = x.new_zeros(n, self.d_out)
        flat_idx = r.idx.reshape(-1)
        flat_w = r.weight.reshape(-1).to(x.dtype)
        rows = torch.arange(n).repeat_interleave(k)
        for e in torch.unique(flat_idx).tolist():
            sel = flat_idx == e
            tok = rows[sel]
            y = self.experts[e](x[tok])
            out.index_add_(0, tok, y * flat_w[sel, None])
        return out

    def dense_forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reference: every expert on every row, combined with the routing weights as a mask."""
        r = self.route(x)
        all_out = torch.stack([f(x) for f in self.experts], dim=1)  # (N, E, d_out)
        mask = torch.zeros(x.shape[0], self.n_experts, dtype=x.dtype)
        mask.scatter_add_(1, r.idx, r.weight.to(x.dtype))
        return (mask[:, :, None] * all_out).sum(dim=1)

    def stored_params(self) -> int:
        return n_params(self)

    def active_params(self) -> int:
        """Router + the k largest experts: what one input touches."""
        k = getattr(self.router, "k", 1)
        sizes = sorted((n_params(f) for f in self.experts), reverse=True)
        return n_params(self.router) + sum(sizes[:k])


class DeepMoE(nn.Module):
    """A stack h^(L) o ... o h^(1) of MoE layers; ``paths`` reports each input's expert per layer."""

    def __init__(self, layers: Sequence[MoE]):
        super().__init__()
        if not layers:
            raise ValueError("layers: expected at least one MoE layer, got none")
        for i in range(1, len(layers)):
            if layers[i].d_in != layers[i - 1].d_out:
                raise ValueError(f"layer {i}: expected d_in = {layers[i - 1].d_out} "
                                 f"(the previous layer's d_out), got {layers[i].d_in}")
        self.layers = nn.ModuleList(layers)

    @property
    def d_in(self) -> int:
        return self.layers[0].d_in

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_with_paths(x)[0]

    def forward_with_paths(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Output and the top-1 expert index of every layer, shape (N, L)."""
        x = validate.tensor(x, "x", ndim=2, last=self.d_in)
        path = []
        for layer in self.layers:
            r = layer.route(x)
            path.append(r.idx[:, 0])
            x = layer(x, routing=r)
        return x, torch.stack(path, dim=1)

    def stored_params(self) -> int:
        return n_params(self)

    def active_params(self) -> int:
        return sum(layer.active_params() for layer in self.layers)


def moe_class_member(n_layers: int, n_experts: int, depth: int, width: int, dims: Sequence[int],
                     k: int = 1, gate_bias: bool = False, dtype: torch.dtype = torch.float32,
                     activation: str = "relu") -> DeepMoE:
    """A random member of H^{L,E}_{l,m}: L MoE layers, E experts each, l-layer width-m experts.

    ``dims`` (length L + 1) gives each layer's input and output size, which the paper leaves implicit.
    """
    n_layers = validate.integer(n_layers, "n_layers", low=1)
    n_experts = validate.integer(n_experts, "n_experts", low=1)
    if len(dims) != n_layers + 1:
        raise ValueError(f"dims: expected {n_layers + 1} sizes (one per layer boundary), "
                         f"got {len(dims)}: {list(dims)}")
    layers = []
    for i in range(n_layers):
        experts = [MLP(dims[i], dims[i + 1], width, depth, activation, dtype) for _ in range(n_experts)]
        gate = TopKGate(dims[i], n_experts, k, bias=gate_bias, dtype=dtype)
        layers.append(MoE(experts, gate, dims[i], dims[i + 1]))
    return DeepMoE(layers)
