"""moe_lib: the code behind every chapter of the MoE theory companion book.

Utilities (import nothing else of moe_lib): ``claims``, ``validate`` (input checks, ``DTYPE``),
``seed``, ``progress``, ``plots``. Topic subpackages, imported one way
(utilities <- models <- {geometry, fitting, analysis, capacity} <- constructions <- experiments):
``models``, ``geometry``, ``fitting``, ``analysis``, ``capacity``, ``constructions``,
``experiments``. See CONTRIBUTING.md for the tree, one line per module.
"""

from . import analysis, capacity, constructions, experiments, fitting, geometry, models, plots
from .analysis.rates import loglog_slope
from .claims import ClaimFailed, ClaimReport, Claims
from .models.experts import MLP, PReLU, mlp_param_count, n_nonzero, n_params
from .models.moe import DeepMoE, MoE, moe_class_member
from .models.routing import GridRouter, NearestPrototypeRouter, Routing, TopKGate, top_k
from .seed import seed_everything

__all__ = [
    "analysis", "capacity", "constructions", "experiments", "fitting", "geometry", "models",
    "plots", "Claims", "ClaimFailed", "ClaimReport",
    "MLP", "PReLU", "mlp_param_count", "n_nonzero", "n_params",
    "DeepMoE", "MoE", "moe_class_member", "loglog_slope", "GridRouter",
    "NearestPrototypeRouter", "Routing", "TopKGate", "top_k", "seed_everything",
]
