"""``StackedMoE``: many MoE stacks with *stacked* expert weights, for fast training on CPU.

``moe_lib.MoE`` dispatches sparsely: a Python loop over experts, each on the rows routed to it.
That is the faithful, readable layer, but training it for thousands of small steps is dominated
by Python overhead. ``StackedMoE`` computes the *same function* differently:

- the weights of one affine map of every expert of one layer live in one tensor of shape
  (S, E, out, in): S independent models (a "model axis": seeds, widths, input sizes) times E
  experts;
- all E experts run on every input with one batched matrix product, giving (S, E, N, d_out);
- the top-k selection of the linear gate g(x) = W_R x (+ b) (ties to the lower index, exactly as
  ``moe_lib.models.routing.top_k``) then *gathers* the chosen experts' outputs and mixes them with the
  softmax over the selected scores.

So for K = 1 the output is the chosen expert's output, exactly as in Wang & E's layer. Running all
experts costs E times the arithmetic of sparse dispatch, which for a few small experts is far
cheaper than a Python loop. For the common case K = 1 with one hidden layer per expert a leaner
path computes the gate scores and every expert's first affine map in one product, keeps only the
chosen expert's pre-activations for the ReLU, and then keeps only the chosen expert's output (same
function, less elementwise work). ``from_deep_moe`` / ``to_deep_moe`` convert to and from
``moe_lib.DeepMoE`` (the unit tests check that both compute the same function).

Models of different sizes in one stack. Model s may have its own hidden width m_s and its own
input size D_s; the stack stores everything at the largest sizes and keeps a 0/1 mask on each
padded weight, applied in every forward pass, so the padded entries are exactly zero, get zero
gradient and never move. Model s then computes exactly its own unpadded network of its first D_s
input coordinates (it ignores the rest), and a width or D sweep can be trained as one stack. (On
a CPU, separate stacks per size are usually faster: padding costs the arithmetic of the largest
model for every model.)

Router gradient. With K = 1 the mixing weight is alpha = e^{g_i}/e^{g_i} = 1 for every gate, so
under any loss the gate receives *exactly zero* gradient and stays at its initialisation.
``router_grad="straight_through"`` (the default) keeps the forward value alpha unchanged but adds
the gradient of the full-softmax probability p_i(x) = softmax(g(x))_i of each selected expert:
alpha_st = alpha + (p_i - stopgrad(p_i)). Its value is alpha (p - p is exactly 0 in floating
point); its gradient is that of the Switch-Transformer gate (Fedus et al. 2022), which multiplies
the output by p_i. The router learns while the function stays a member of H^{L,E}_{l,m}.
``router_grad="selected"`` differentiates the paper's formula as it stands (no router training at
K = 1).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .. import validate
from .batching import apply_in_chunks
from .experts import MLP, PReLU
from .moe import DeepMoE, MoE, moe_class_member
from .routing import TopKGate

ROUTER_GRADS = ("straight_through", "selected")


def _per_model(v, name: str, n: int) -> list[int]:
    if isinstance(v, (list, tuple)):
        if len(v) != n:
            raise ValueError(f"{name}: expected one value per model ({n}), got {len(v)}: {list(v)}")
        return [validate.integer(x, name, low=1) for x in v]
    return [validate.integer(v, name, low=1)] * n


class StackedMoE(nn.Module):
    """S independent stacks of L MoE layers; each layer has E experts (``depth``-layer ReLU MLPs)
    and a linear top-k gate; weights stacked as (S, E, ...).

    Parameters
    ----------
    dims : layer boundary sizes (d_0, ..., d_L): layer l maps R^{d_{l-1}} -> R^{d_l}. d_0 is the
        largest input size of the stack.
    n_experts : E, experts per layer.
    width : hidden width m of the experts: one int, or one per model.
    depth : affine maps per expert (Wang & E's "l-layer" expert; 2 = one hidden layer).
    k : experts selected per input (top-k; softmax over the selected scores).
    n_models : S, independent models evaluated and trained together.
    in_dims : input size D_s <= d_0 of each model (default d_0 for all): model s reads x[:D_s].
    gate_bias : add a bias to the gates (the paper's gate W_R x has none).
    router_grad : "straight_through" or "selected", see the module docstring.
    dtype : parameter dtype.

    The weights start at zero; build models with ``stacked_class_members`` (PyTorch's default
    initialisation, one seed per model) or ``from_deep_moe``.

    ``forward(x)`` takes x of shape (N, d_0) (the same inputs for every model) or (S, N, d_0) and
    returns (S, N, d_L).
    """

    def __init__(self, dims: Sequence[int], n_experts: int, width: int | Sequence[int],
                 depth: int = 2, k: int = 1, n_models: int = 1,
                 in_dims: Sequence[int] | None = None, gate_bias: bool = False,
                 router_grad: str = "straight_through", dtype: torch.dtype = torch.float64):
        super().__init__()
        dims = list(dims)
        if len(dims) < 2:
            raise ValueError(f"dims: expected at least 2 sizes (d_in, d_out), got {dims}")
        self.dims = [validate.integer(d, "dims entry", low=1) for d in dims]
        self.n_experts = validate.integer(n_experts, "n_experts", low=1)
        self.depth = validate.integer(depth, "depth", low=1)
        self.k = validate.integer(k, "k", low=1, high=self.n_experts)
        self.n_models = S = validate.integer(n_models, "n_models", low=1)
        self.widths = _per_model(width, "width", S)
        self.in_dims = _per_model(self.dims[0] if in_dims is None else list(in_dims), "in_dims", S)
        if max(self.in_dims) > self.dims[0]:
            raise ValueError(f"in_dims: expected values <= dims[0] = {self.dims[0]}, "
                             f"got {self.in_dims}")
        self.width = max(self.widths)
        self.gate_bias = bool(gate_bias)
        self.router_grad = validate.choice(router_grad, "router_grad", ROUTER_GRADS)
        E, m = self.n_experts, self.width
        self.gate_w = nn.ParameterList()
        self.gate_b = nn.ParameterList()
        self.weights = nn.ParameterList()   # layer l, affine map j at index l * depth + j
        self.biases = nn.ParameterList()
        for d_in, d_out in zip(self.dims[:-1], self.dims[1:], strict=True):
            self.gate_w.append(nn.Parameter(torch.zeros(S, E, d_in, dtype=dtype)))
            if self.gate_bias:
                self.gate_b.append(nn.Parameter(torch.zeros(S, E, dtype=dtype)))
            sizes = [d_in] + [m] * (depth - 1) + [d_out]
            for j in range(depth):
                w = torch.zeros(S, E, sizes[j + 1], sizes[j], dtype=dtype)
                self.weights.append(nn.Parameter(w))
                self.biases.append(nn.Parameter(torch.zeros(S, E, sizes[j + 1], dtype=dtype)))
        self._build_masks(dtype)

    # ---- padding masks -------------------------------------------------------------------------

    def _build_masks(self, dtype: torch.dtype) -> None:
        S = self.n_models
        w = torch.tensor(self.widths)
        hid = (torch.arange(self.width)[None, :] < w[:, None]).to(dtype)          # (S, m)
        inp = (torch.arange(self.dims[0])[None, :] < torch.tensor(self.in_dims)[:, None]).to(dtype)
        self.masks: dict[tuple[str, int], torch.Tensor] = {}
        if min(self.in_dims) < self.dims[0]:
            self.masks[("gate_w", 0)] = inp[:, None, :].expand(S, self.n_experts, -1)
            self.masks[("weights", 0)] = inp[:, None, None, :]
        if min(self.widths) < self.width and self.depth > 1:
            for layer in range(self.n_layers):
                for j in range(self.depth):
                    i = layer * self.depth + j
                    rows = hid[:, None, :, None] if j < self.depth - 1 else None
                    cols = hid[:, None, None, :] if j > 0 else None
                    mask = rows if cols is None else (cols if rows is None else rows * cols)
                    old = self.masks.get(("weights", i))
                    self.masks[("weights", i)] = mask if old is None else mask * old
                    if j < self.depth - 1:
                        self.masks[("biases", i)] = hid[:, None, :]
        with torch.no_grad():
            for (name, i), mask in self.masks.items():
                p = getattr(self, name)[i]
                p.mul_(mask.expand_as(p))

    def _param(self, name: str, i: int) -> torch.Tensor:
        p = getattr(self, name)[i]
        mask = self.masks.get((name, i))
        return p if mask is None else p * mask

    # ---- sizes ---------------------------------------------------------------------------------

    @property
    def n_layers(self) -> int:
        return len(self.dims) - 1

    @property
    def d_in(self) -> int:
        return self.dims[0]

    @property
    def d_out(self) -> int:
        return self.dims[-1]

    def _check_model(self, model: int) -> int:
        return validate.integer(model, "model", low=0, high=self.n_models - 1)

    def expert_params(self, model: int = 0, layer: int = 0) -> int:
        """Parameters of one expert of layer ``layer`` of model ``model`` (unpadded)."""
        s = self._check_model(model)
        d_in = self.in_dims[s] if layer == 0 else self.dims[layer]
        sizes = [d_in] + [self.widths[s]] * (self.depth - 1) + [self.dims[layer + 1]]
        return sum(sizes[j] * sizes[j + 1] + sizes[j + 1] for j in range(self.depth))

    def _gate_params(self, s: int, layer: int) -> int:
        d_in = self.in_dims[s] if layer == 0 else self.dims[layer]
        return self.n_experts * (d_in + (1 if self.gate_bias else 0))

    def stored_params(self, model: int = 0) -> int:
        """Stored parameters of model ``model``: gates and all experts (unpadded)."""
        s = self._check_model(model)
        return sum(self._gate_params(s, layer) + self.n_experts * self.expert_params(s, layer)
                   for layer in range(self.n_layers))

    def active_params(self, model: int = 0) -> int:
        """Parameters one input touches in model ``model``: every gate and k experts per layer."""
        s = self._check_model(model)
        return sum(self._gate_params(s, layer) + self.k * self.expert_params(s, layer)
                   for layer in range(self.n_layers))

    # ---- forward -------------------------------------------------------------------------------

    def _inputs(self, x: torch.Tensor) -> torch.Tensor:
        dtype = self.gate_w[0].dtype
        x = validate.tensor(x, "x", last=self.d_in, finite=False)  # NaN shows in the loss
        if x.ndim == 2:
            x = x.unsqueeze(0).expand(self.n_models, -1, -1)
        elif x.ndim != 3 or x.shape[0] != self.n_models:
            raise ValueError(f"x: expected shape (N, {self.d_in}) or "
                             f"({self.n_models}, N, {self.d_in}), got {tuple(x.shape)}")
        return x.to(dtype)

    def scores(self, layer: int, x: torch.Tensor) -> torch.Tensor:
        """Gate scores g(x) = W_R x (+ b) of layer ``layer`` on x of shape (S, N, d): (S, N, E)."""
        s = torch.matmul(x, self._param("gate_w", layer).transpose(1, 2))
        if self.gate_bias:
            s = s + self.gate_b[layer][:, None, :]
        return s

    def experts_all(self, layer: int, x: torch.Tensor) -> torch.Tensor:
        """Every expert of layer ``layer`` on every row of x (S, N, d): shape (S, E, N, d_out)."""
        base = layer * self.depth
        S, N, E = x.shape[0], x.shape[1], self.n_experts
        # first affine map of all experts at once: one (N, d) x (d, E * out) product per model
        w = self._param("weights", base)                 # (S, E, out, d)
        out = w.shape[2]
        h = torch.bmm(x, w.permute(0, 3, 1, 2).reshape(S, -1, E * out))
        h = h.reshape(S, N, E, out).transpose(1, 2) + self._param("biases", base)[:, :, None]
        for j in range(1, self.depth):
            w = self._param("weights", base + j)
            b = self._param("biases", base + j)
            h = torch.matmul(torch.relu(h), w.transpose(2, 3)) + b[:, :, None]
        return h

    def select(self, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Top-k of scores g (S, N, E), ties to the lower index: indices (S, N, k), weights alpha.

        alpha is the softmax over the selected scores (exactly 1 for k = 1); with
        ``router_grad="straight_through"`` its gradient is that of softmax(g) at the selected
        experts.
        """
        if self.k == 1:
            idx = torch.argmax(g, dim=-1, keepdim=True)  # first maximum: the lower index on ties
            alpha = torch.ones(idx.shape, dtype=g.dtype)
        else:
            idx = torch.sort(g, dim=-1, descending=True, stable=True).indices[..., :self.k]
            alpha = torch.softmax(torch.gather(g, -1, idx), dim=-1)
        if self.router_grad == "straight_through" and g.requires_grad:
            p = torch.gather(torch.softmax(g, dim=-1), -1, idx)
            alpha = alpha + (p - p.detach())
        return idx, alpha

    def layer_forward(self, layer: int, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One MoE layer on x (S, N, d): output (S, N, d_out) and the selected experts (S, N, k)."""
        if self.n_experts == 1:    # a dense layer: the gate always picks expert 0, alpha = 1
            idx = torch.zeros(x.shape[:2] + (1,), dtype=torch.long)
            return self.experts_all(layer, x)[:, 0], idx
        if self.depth == 2 and self.k == 1:
            return self._layer_top1_one_hidden(layer, x)
        idx, alpha = self.select(self.scores(layer, x))
        out = self.experts_all(layer, x)                 # (S, E, N, d_out)
        d_out = out.shape[-1]
        y = 0
        for j in range(self.k):
            sel = torch.gather(out, 1, idx[:, None, :, j:j + 1].expand(-1, 1, -1, d_out))[:, 0]
            y = y + alpha[..., j:j + 1] * sel
        return y, idx

    def _layer_top1_one_hidden(self, layer: int,
                               x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``layer_forward`` for top-1 and experts with one hidden layer, with less work.

        One product [x, 1] @ [W_R | W_1 of every expert (with biases)] gives the gate scores and
        every expert's pre-activations; only the chosen expert's pre-activations go through the
        ReLU; one product of that hidden vector with every expert's W_2 gives E candidate outputs,
        of which the chosen one is kept. The chosen expert's output relu(W_1 x + b_1) W_2 + b_2 is
        the same as in ``experts_all``; the other products are discarded.
        """
        S, N, d = x.shape
        E, base = self.n_experts, layer * self.depth
        w1 = self._param("weights", base)                # (S, E, m, d)
        m = w1.shape[2]
        b1 = self._param("biases", base)                 # (S, E, m)
        w2 = self._param("weights", base + 1)            # (S, E, o, m)
        b2 = self._param("biases", base + 1)             # (S, E, o)
        o = w2.shape[2]
        gate_b = self.gate_b[layer] if self.gate_bias else torch.zeros(S, E, dtype=x.dtype)
        first = torch.cat([
            torch.cat([self._param("gate_w", layer), gate_b[:, :, None]], dim=2),   # (S, E, d+1)
            torch.cat([w1, b1[..., None]], dim=3).reshape(S, E * m, d + 1),
        ], dim=1)                                        # (S, E + E m, d + 1)
        x1 = torch.cat([x, torch.ones(S, N, 1, dtype=x.dtype)], dim=2)
        z = torch.bmm(x1, first.transpose(1, 2))         # (S, N, E + E m)
        g = z[..., :E]
        idx, alpha = self.select(g)                      # (S, N, 1)
        pre = z[..., E:].reshape(S, N, E, m)
        h = torch.relu(torch.gather(pre, 2, idx[..., None].expand(-1, -1, 1, m))[:, :, 0])
        cand = torch.bmm(h, w2.permute(0, 3, 1, 2).reshape(S, m, E * o)).reshape(S, N, E, o)
        out = torch.gather(cand + b2[:, None], 2, idx[..., None].expand(-1, -1, 1, o))[:, :, 0]
        return alpha * out, idx

    def forward_with_paths(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Output (S, N, d_L) and the top-1 expert of every layer, (S, N, L) (as ``DeepMoE``)."""
        h = self._inputs(x)
        path = []
        for layer in range(self.n_layers):
            h, idx = self.layer_forward(layer, h)
            path.append(idx[..., 0])
        return h, torch.stack(path, dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_with_paths(x)[0]

    @torch.no_grad()
    def predict(self, x: torch.Tensor, chunk: int = 4096) -> tuple[torch.Tensor, torch.Tensor]:
        """``forward_with_paths`` without gradients, in chunks of rows (bounded memory)."""
        return apply_in_chunks(self.forward_with_paths, self._inputs(x), chunk, dim=1)

    # ---- conversion to and from moe_lib.DeepMoE ------------------------------------------------

    @classmethod
    def from_deep_moe(cls, models: Sequence[DeepMoE],
                      router_grad: str = "straight_through") -> StackedMoE:
        """Stack S ``DeepMoE`` models (MLP experts, ``TopKGate`` routers) of equal E, depth, k, gate
        bias, dtype and layer sizes except the input size; widths and input sizes may differ
        (smaller models are zero-padded and masked)."""
        models = list(models)
        if not models:
            raise ValueError("models: expected at least one DeepMoE, got none")
        shapes = [_shape_of(m) for m in models]
        common = shapes[0]["common"]
        for i, sh in enumerate(shapes[1:], start=1):
            if sh["common"] != common:
                raise ValueError(f"models[{i}]: expected (layer sizes after the input, E, depth, "
                                 f"k, gate bias, dtype) = {common}, got {sh['common']}")
        later_dims, n_experts, depth, k, gate_bias, dtype = common
        in_dims = [sh["d_in"] for sh in shapes]
        widths = [sh["width"] for sh in shapes]
        out = cls([max(in_dims)] + list(later_dims), n_experts, widths, depth, k, len(models),
                  in_dims, gate_bias, router_grad, dtype)
        with torch.no_grad():
            for s, m in enumerate(models):
                for layer, moe in enumerate(m.layers):
                    w = moe.router.linear.weight
                    out.gate_w[layer][s, :, :w.shape[1]].copy_(w)
                    if gate_bias:
                        out.gate_b[layer][s].copy_(moe.router.linear.bias)
                    for e, expert in enumerate(moe.experts):
                        for j, lin in enumerate(expert.linears):
                            o, i = lin.weight.shape
                            out.weights[layer * depth + j][s, e, :o, :i].copy_(lin.weight)
                            out.biases[layer * depth + j][s, e, :o].copy_(lin.bias)
        return out

    def to_deep_moe(self, model: int = 0) -> DeepMoE:
        """Model ``model`` of the stack as a ``moe_lib.DeepMoE`` (sparse dispatch), same weights,
        at its own (unpadded) width and input size."""
        s = self._check_model(model)
        dtype = self.gate_w[0].dtype
        m = self.widths[s]
        layers = []
        with torch.no_grad():
            for layer, d_out in enumerate(self.dims[1:]):
                d_in = self.in_dims[s] if layer == 0 else self.dims[layer]
                gate = TopKGate(d_in, self.n_experts, self.k, bias=self.gate_bias, dtype=dtype)
                gate.linear.weight.copy_(self.gate_w[layer][s, :, :d_in])
                if self.gate_bias:
                    gate.linear.bias.copy_(self.gate_b[layer][s])
                experts = []
                for e in range(self.n_experts):
                    mlp = MLP(d_in, d_out, m, self.depth, dtype=dtype)
                    for j, lin in enumerate(mlp.linears):
                        o, i = lin.weight.shape
                        lin.weight.copy_(self.weights[layer * self.depth + j][s, e, :o, :i])
                        lin.bias.copy_(self.biases[layer * self.depth + j][s, e, :o])
                    experts.append(mlp)
                layers.append(MoE(experts, gate, d_in, d_out))
        return DeepMoE(layers)


def _shape_of(model: DeepMoE) -> dict:
    if not isinstance(model, DeepMoE):
        raise ValueError(f"expected a moe_lib.DeepMoE, got {type(model).__name__}")
    routers = [layer.router for layer in model.layers]
    if not all(isinstance(r, TopKGate) for r in routers):
        raise ValueError("expected TopKGate routers in every layer, got "
                         f"{[type(r).__name__ for r in routers]}")
    experts = [f for layer in model.layers for f in layer.experts]
    if not all(isinstance(f, MLP) for f in experts) or any(
            isinstance(m, PReLU) for f in experts for m in f.net):
        raise ValueError("expected ReLU MLP experts (moe_lib.MLP, activation 'relu') in every "
                         "layer, "
                         f"got {sorted({type(f).__name__ for f in experts})}")
    n_experts = {layer.n_experts for layer in model.layers}
    widths = {f.width for f in experts}
    depths = {f.depth for f in experts}
    ks = {r.k for r in routers}
    biases = {r.linear.bias is not None for r in routers}
    if len(n_experts) > 1 or len(widths) > 1 or len(depths) > 1 or len(ks) > 1 or len(biases) > 1:
        raise ValueError(f"expected equal E, expert width/depth, k and gate bias in every layer, "
                         f"got "
                         f"E {sorted(n_experts)}, width {sorted(widths)}, depth {sorted(depths)}, "
                         f"k {sorted(ks)}, bias {sorted(biases)}")
    later = tuple(layer.d_out for layer in model.layers)
    dtype = routers[0].linear.weight.dtype
    return {"d_in": model.layers[0].d_in, "width": widths.pop(),
            "common": (later, n_experts.pop(), depths.pop(), ks.pop(), biases.pop(), dtype)}


def stacked_class_members(dims: Sequence[int], n_experts: int, width: int | Sequence[int],
                          seeds: Sequence[int], depth: int = 2, k: int = 1,
                          in_dims: Sequence[int] | None = None, gate_bias: bool = False,
                          router_grad: str = "straight_through",
                          dtype: torch.dtype = torch.float64) -> StackedMoE:
    """One ``StackedMoE`` holding len(seeds) random members of H^{L,E}_{depth,width}.

    ``width`` and ``in_dims`` may give one value per model (a width or input-size sweep in one
    stack); ``dims[0]`` is then the largest input size. Model s is initialised exactly as
    ``moe_class_member`` (PyTorch's default uniform initialisation) after
    ``torch.manual_seed(seeds[s])``, so a model does not depend on which others share the stack.
    The global torch RNG state is restored afterwards.
    """
    seeds = [validate.integer(sd, "seed", low=0) for sd in seeds]
    if not seeds:
        raise ValueError("seeds: expected at least one seed, got none")
    dims = list(dims)
    if len(dims) < 2:
        raise ValueError(f"dims: expected at least 2 sizes (d_in, d_out), got {dims}")
    widths = _per_model(width, "width", len(seeds))
    d0s = _per_model(dims[0] if in_dims is None else list(in_dims), "in_dims", len(seeds))
    state = torch.random.get_rng_state()
    try:
        models = []
        for sd, m, d0 in zip(seeds, widths, d0s, strict=True):
            torch.manual_seed(sd)
            models.append(moe_class_member(len(dims) - 1, n_experts, depth, m, [d0] + dims[1:], k=k,
                                           gate_bias=gate_bias, dtype=dtype))
    finally:
        torch.random.set_rng_state(state)
    out = StackedMoE.from_deep_moe(models, router_grad=router_grad)
    if out.dims[0] != dims[0]:
        raise ValueError(f"in_dims: expected the largest input size to equal dims[0] = {dims[0]}, "
                         f"got {out.dims[0]}")
    return out

