"""moe_lib: the code behind every chapter of the MoE theory companion book."""

from . import plots
from .claims import ClaimFailed, ClaimReport, Claims
from .experts import MLP, PReLU, mlp_param_count, n_nonzero, n_params
from .moe import DeepMoE, MoE, moe_class_member
from .rates import loglog_slope
from .routing import GridRouter, NearestPrototypeRouter, Routing, TopKGate, top_k
from .seed import seed_everything

__all__ = [
    "plots", "Claims", "ClaimFailed", "ClaimReport",
    "MLP", "PReLU", "mlp_param_count", "n_nonzero", "n_params",
    "DeepMoE", "MoE", "moe_class_member", "loglog_slope", "GridRouter",
    "NearestPrototypeRouter", "Routing", "TopKGate", "top_k", "seed_everything",
]
