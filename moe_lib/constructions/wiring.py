"""Writing ReLU networks weight by weight: the pieces every closed-form construction shares.

- ``coords``, ``selector``: coordinates of a state vector and the 0/1 matrix that picks them;
- ``HiddenLayer`` and ``assemble``: build a hidden layer row block by row block, then pad the
  layers to one width and make a ``moe_lib.models.MLP`` (``pad_cols``);
- ``carry_rows``: the two neurons relu(v), relu(-v) that carry coordinates through a layer;
- ``Block``, ``block_from_mlp``, ``carry_expert``: a function sub-network on part of the state
  plus carried coordinates, with the *role* of every parameter (``UNUSED``, ``FUNCTION``,
  ``CARRY``); ``collect_roles`` names the roles of a stack of layers;
- fixed gates, all built by ``moe_lib.models.fixed_gate``: ``argmax_gate`` (scores = some state
  coordinates, W_R = [0 | I]), ``constant_gate`` (W_R = 0, every input to expert 0),
  ``gate_with_weights`` (any W, with roles).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .. import validate
from ..models.experts import MLP, relu_mlp_from_weights
from ..models.moe import DeepMoE, MoE
from ..models.routing import TopKGate, fixed_gate
from ..validate import DTYPE

UNUSED, FUNCTION, CARRY = 0, 1, 2


def coords(idx, n: int, name: str) -> torch.Tensor:
    """Coordinates ``idx`` (a sequence of ints or a range) of a state of size n, as a tensor."""
    out = torch.as_tensor(list(idx), dtype=torch.long)
    if out.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D list of coordinates, "
                         f"got shape {tuple(out.shape)}")
    if out.numel() and (int(out.min()) < 0 or int(out.max()) >= n):
        raise ValueError(f"{name}: expected coordinates in [0, {n - 1}], got {out.tolist()}")
    if out.unique().numel() != out.numel():
        raise ValueError(f"{name}: expected distinct coordinates, got {out.tolist()}")
    return out


def selector(n_in: int, idx: torch.Tensor) -> torch.Tensor:
    """The (len(idx), n_in) 0/1 matrix picking the coordinates idx of a state."""
    sel = torch.zeros(idx.numel(), n_in, dtype=DTYPE)
    sel[torch.arange(idx.numel()), idx] = 1.0
    return sel


class HiddenLayer:
    """A hidden layer under construction: rows of (weights on the previous layer, bias)."""

    def __init__(self, n_prev: int):
        self.n_prev = n_prev
        self.w: list[torch.Tensor] = []
        self.b: list[torch.Tensor] = []

    def add(self, w: torch.Tensor, b: torch.Tensor) -> slice:
        start = self.size
        self.w.append(w.to(DTYPE).reshape(-1, self.n_prev))
        self.b.append(b.to(DTYPE).reshape(-1))
        return slice(start, self.size)

    @property
    def size(self) -> int:
        return sum(int(w.shape[0]) for w in self.w)

    def matrices(self, width: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Weights padded with zero rows to ``width`` (zero neurons output ReLU(0) = 0)."""
        w = torch.cat(self.w) if self.w else torch.zeros(0, self.n_prev, dtype=DTYPE)
        b = torch.cat(self.b) if self.b else torch.zeros(0, dtype=DTYPE)
        pad = width - w.shape[0]
        return (torch.cat([w, torch.zeros(pad, self.n_prev, dtype=DTYPE)]),
                torch.cat([b, torch.zeros(pad, dtype=DTYPE)]))


def pad_cols(w: torch.Tensor, width: int) -> torch.Tensor:
    return torch.cat([w, torch.zeros(w.shape[0], width - w.shape[1], dtype=DTYPE)], dim=1)


def assemble(layers: list[HiddenLayer], out_w: torch.Tensor, out_b: torch.Tensor) -> MLP:
    """Assemble hidden layers (each a HiddenLayer whose rows act on the previous, unpadded layer) and
    the output map into one ``MLP`` of equal hidden widths."""
    width = max(max(layer.size for layer in layers), 1)
    weights, biases = [], []
    for k, layer in enumerate(layers):
        w, b = layer.matrices(width)
        if k > 0:
            w = pad_cols(w, width)
        weights.append(w)
        biases.append(b)
    weights.append(pad_cols(out_w.to(DTYPE), width))
    biases.append(out_b.to(DTYPE))
    return relu_mlp_from_weights(weights, biases)


def argmax_gate(n_in: int, cols) -> TopKGate:
    """Bias-free top-1 gate whose score i is the state coordinate cols[i]: W_R = [0 | I_E]."""
    n_in = validate.integer(n_in, "n_in", low=1)
    cols = coords(cols, n_in, "cols")
    return fixed_gate(selector(n_in, cols))


def constant_gate(n_in: int, n_experts: int) -> TopKGate:
    """Bias-free gate with W_R = 0: every score ties and top-1 picks expert 0 (lower index)."""
    n_in = validate.integer(n_in, "n_in", low=1)
    n_experts = validate.integer(n_experts, "n_experts", low=1)
    return fixed_gate(torch.zeros(n_experts, n_in, dtype=DTYPE))


@dataclass
class Block:
    """A function sub-network on part of the state: reads ``reads``, adds into ``writes``.

    ``weights[0]`` is (k_1, len(reads)), the last is (len(writes), k_last); ``masks`` mark the
    entries the construction uses (default: all of them), the rest must be zero.
    """

    reads: Sequence[int]
    writes: Sequence[int]
    weights: list
    biases: list
    masks: list | None = None
    bias_masks: list | None = None


def block_from_mlp(mlp, reads: Sequence[int], writes: Sequence[int]) -> Block:
    """An existing ReLU ``MLP`` as a ``Block`` on the coordinates ``reads`` -> ``writes``; the
    entries it uses are its nonzero weights and biases (zero padding is not counted)."""
    linears = getattr(mlp, "linears", None)
    if not linears:
        raise ValueError(f"mlp: expected a moe_lib.MLP, got {type(mlp).__name__}")
    reads, writes = list(reads), list(writes)
    if linears[0].in_features != len(reads) or linears[-1].out_features != len(writes):
        raise ValueError(f"mlp: expected {len(reads)} inputs and {len(writes)} outputs (reads, "
                         f"writes), got {linears[0].in_features} and {linears[-1].out_features}")
    w = [lin.weight.detach().numpy().astype(np.float64) for lin in linears]
    b = [lin.bias.detach().numpy().astype(np.float64) for lin in linears]
    return Block(reads, writes, w, b, masks=[x != 0 for x in w], bias_masks=[x != 0 for x in b])


def carry_expert(d_in: int, d_out: int, block: Block | None, carry: Sequence[tuple[int, int]]):
    """A ReLU expert computing out[writes] = block(in[reads]) and out[dst] = in[src] for (src, dst).

    Each carried coordinate uses two neurons per hidden layer, relu(v) and relu(-v) (relu of a
    nonnegative value is itself, so deeper experts pass the pair on unchanged), and the output adds
    relu(v) - relu(-v) = v. Hidden widths are padded with zero neurons to be equal. Returns the
    float64 ``MLP`` and the role of each of its parameters (a list of (weight, bias) role tensors).
    """
    d_in = validate.integer(d_in, "d_in", low=1)
    d_out = validate.integer(d_out, "d_out", low=1)
    for src, dst in carry:
        if not (0 <= src < d_in and 0 <= dst < d_out):
            raise ValueError(f"carry: expected (src, dst) in [0, {d_in}) x [0, {d_out}), "
                             f"got {(src, dst)}")
    if block is None:
        fw, fb, fm, fbm, reads, writes = [np.zeros((0, d_in)), np.zeros((d_out, 0))], \
            [np.zeros(0), np.zeros(d_out)], None, None, list(range(d_in)), list(range(d_out))
    else:
        fw = [np.asarray(w, dtype=np.float64) for w in block.weights]
        fb = [np.asarray(b, dtype=np.float64) for b in block.biases]
        fm, fbm = block.masks, block.bias_masks
        reads, writes = list(block.reads), list(block.writes)
    depth = len(fw)
    if depth < 2 or len(fb) != depth:
        raise ValueError(f"block: expected >= 2 weight matrices and as many biases, "
                         f"got {len(fw)} and {len(fb)}")
    if any(not 0 <= r < d_in for r in reads) or any(not 0 <= w < d_out for w in writes):
        raise ValueError(f"block: expected reads in [0, {d_in}) and writes in [0, {d_out}), "
                         f"got {reads} and {writes}")
    dims = [len(reads)] + [w.shape[0] for w in fw]
    for j, (w, b) in enumerate(zip(fw, fb, strict=True)):
        if w.shape != (dims[j + 1], dims[j]) or b.shape != (dims[j + 1],):
            raise ValueError(f"block layer {j}: expected weight ({dims[j + 1]}, {dims[j]}) and "
                             f"bias ({dims[j + 1]},), got {w.shape} and {b.shape}")
    if dims[-1] != len(writes):
        raise ValueError(f"block: expected {len(writes)} outputs (one per write), got {dims[-1]}")
    fm = [np.ones(w.shape, bool) for w in fw] if fm is None else [np.asarray(a, bool) for a in fm]
    fbm = [np.ones(b.shape, bool) for b in fb] if fbm is None else [np.asarray(a, bool)
                                                                    for a in fbm]
    nc = len(carry)
    width = max(dims[1:-1]) + 2 * nc
    sizes = [d_in] + [width] * (depth - 1) + [d_out]
    W = [np.zeros((sizes[j + 1], sizes[j])) for j in range(depth)]
    B = [np.zeros(sizes[j + 1]) for j in range(depth)]
    RW = [np.zeros(w.shape, np.int8) for w in W]
    RB = [np.zeros(b.shape, np.int8) for b in B]
    rows_in = [np.asarray(reads)] + [np.arange(k) for k in dims[1:-1]]
    rows_out = [np.arange(k) for k in dims[1:-1]] + [np.asarray(writes)]
    for j in range(depth):
        ix = np.ix_(rows_out[j], rows_in[j])
        W[j][ix] += fw[j] * fm[j]
        RW[j][ix] = np.where(fm[j], FUNCTION, RW[j][ix])
        B[j][rows_out[j]] += fb[j] * fbm[j]
        RB[j][rows_out[j]] = np.where(fbm[j], FUNCTION, RB[j][rows_out[j]])
    for c, (src, dst) in enumerate(carry):
        pos, neg = width - 2 * nc + 2 * c, width - 2 * nc + 2 * c + 1
        W[0][pos, src], W[0][neg, src] = 1.0, -1.0
        RW[0][[pos, neg], src] = CARRY
        for j in range(1, depth - 1):
            W[j][pos, pos], W[j][neg, neg] = 1.0, 1.0
            RW[j][[pos, neg], [pos, neg]] = CARRY
        W[-1][dst, pos], W[-1][dst, neg] = 1.0, -1.0
        RW[-1][dst, [pos, neg]] = CARRY
    net = relu_mlp_from_weights([torch.from_numpy(w) for w in W], [torch.from_numpy(b) for b in B])
    roles = [(torch.from_numpy(rw), torch.from_numpy(rb)) for rw, rb in zip(RW, RB, strict=True)]
    return net, roles


def gate_with_weights(W, roles=None) -> tuple[TopKGate, torch.Tensor]:
    """A bias-free top-1 ``TopKGate`` with scores W x, W of shape (E, d_in); roles default to 1."""
    W = torch.as_tensor(np.asarray(W, dtype=np.float64))
    gate = fixed_gate(W)
    r = torch.full(W.shape, FUNCTION, dtype=torch.int8) if roles is None else torch.as_tensor(roles)
    return gate, r.to(torch.int8)


def collect_roles(layers: list[MoE], expert_roles, gate_roles) -> dict[str, torch.Tensor]:
    net = DeepMoE(layers)
    roles = {}
    for li, layer in enumerate(layers):
        roles[f"layers.{li}.router.linear.weight"] = gate_roles[li]
        for e in range(layer.n_experts):
            for j, (rw, rb) in enumerate(expert_roles[li][e]):
                roles[f"layers.{li}.experts.{e}.net.{2 * j}.weight"] = rw
                roles[f"layers.{li}.experts.{e}.net.{2 * j}.bias"] = rb
    return net, roles
