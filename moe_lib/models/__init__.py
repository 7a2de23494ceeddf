"""Models: experts, routers, the MoE layer and its stacked and deep variants, the expert store."""
