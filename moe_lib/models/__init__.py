"""Models: experts, routers, the MoE layer and its stacked and deep variants.

- ``experts``: ``MLP``, ``PReLU``, ``n_params``, ``n_nonzero``, ``mlp_param_count``, and expert
  algebra on written weights: ``relu_mlp_from_weights``, ``affine_relu_mlp``, ``zero_mlp``,
  ``merge_mlps_sum``;
- ``routing``: ``Routing``, ``top_k``, ``TopKGate``, ``NearestPrototypeRouter``, ``GridRouter``,
  ``MLPRouter``; gates with given weights: ``fixed_gate`` (the one builder), ``voronoi_gate``
  with ``with_constant``;
- ``moe``: ``MoE``, ``DeepMoE``, ``moe_class_member``;
- ``stacked``: ``StackedMoE`` (S independent models trained as one), ``stacked_class_members``;
- ``variants``: ``DenseThenMoE``, ``SharedRoutedMoE`` and the rewrites ``as_dense_then_moe``,
  ``as_shared_routed``, ``merge_shared``; ``AutoencoderExpert``, ``autoencoder_expert_params``;
- ``batching``: ``apply_in_chunks`` (evaluate on many rows a block at a time);
- ``dispatch``: ``grouped_forward`` (tokens sorted by expert, each expert on its block of rows;
  ``MoE(..., dispatch="grouped")``) and ``dense_reference``;
- ``routing_tree``: P1's trees over the grid of cells, ``DyadicTreeRouter`` (2^n-ary nearest
  centre) and ``KDTreeRouter`` (binary), with ``brute_force_cells`` and test-point helpers;
- ``momlp``: ``MoMLP`` (hard routing to one expert per input) over expert banks
  (``ConstantBank``, ``StackedMLPBank``, ``ConcatBank``);
- ``expert_store``: experts on disk in safetensors shards, loaded on demand into a bounded LRU
  cache (``write_store``, ``ExpertStore``, ``InMemoryMoMLP``, ``ExpertStoreError``); numpy only,
  so a child process measuring memory need not import torch.

Chapters write ``from moe_lib import models as mo`` (the most used names are also ``ml.<Name>``).
"""

from .batching import apply_in_chunks
from .expert_store import ExpertStore, ExpertStoreError, InMemoryMoMLP, write_store
from .experts import (
    MLP,
    PReLU,
    affine_relu_mlp,
    merge_mlps_sum,
    mlp_param_count,
    n_nonzero,
    n_params,
    relu_mlp_from_weights,
    zero_mlp,
)
from .moe import DeepMoE, MoE, moe_class_member
from .momlp import ConcatBank, ConstantBank, MoMLP, StackedMLPBank, group_by_expert
from .routing import (
    GridRouter,
    MLPRouter,
    NearestPrototypeRouter,
    Routing,
    TopKGate,
    fixed_gate,
    top_k,
    voronoi_gate,
    with_constant,
)
from .routing_tree import DyadicTreeRouter, KDTreeRouter, brute_force_cells
from .stacked import StackedMoE, stacked_class_members
from .variants import (
    AutoencoderExpert,
    DenseThenMoE,
    SharedRoutedMoE,
    as_dense_then_moe,
    as_shared_routed,
    autoencoder_expert_params,
    merge_shared,
)

__all__ = [
    "apply_in_chunks", "MLP", "PReLU", "affine_relu_mlp", "merge_mlps_sum", "mlp_param_count",
    "n_nonzero", "n_params", "relu_mlp_from_weights", "zero_mlp", "DeepMoE", "MoE",
    "moe_class_member", "GridRouter", "MLPRouter", "NearestPrototypeRouter", "Routing", "TopKGate",
    "fixed_gate", "top_k", "voronoi_gate", "with_constant", "StackedMoE", "stacked_class_members",
    "AutoencoderExpert", "DenseThenMoE", "SharedRoutedMoE", "as_dense_then_moe",
    "as_shared_routed", "autoencoder_expert_params", "merge_shared",
    "ExpertStore", "ExpertStoreError", "InMemoryMoMLP", "write_store", "ConcatBank", "ConstantBank",
    "MoMLP", "StackedMLPBank", "group_by_expert", "DyadicTreeRouter", "KDTreeRouter",
    "brute_force_cells",
]
