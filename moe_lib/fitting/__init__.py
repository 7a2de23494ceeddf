"""Fitting: the training loop, random features (one least-squares core) and parameter sweeps.

- ``train``: ``fit`` (Adam on a model or a stack, one data stream per model) -> ``FitResult``,
  ``predict``, ``mse``, samplers ``dataset_sampler`` and ``function_sampler``;
  ``linear_autoencoder`` (PCA) and ``train_linear_autoencoder`` (the same loss by Adam);
- ``random_features``: ``sample_relu_features`` (uniform directions) and
  ``gaussian_relu_features`` (Gaussian), ``least_squares``, ``RandomFeatureNet``,
  ``fit_random_features``/``fit_gaussian_features`` (both through ``fit_outer_layer``),
  ``fit_random_features_select``, ``sup_error``, ``width_sweep``, ``width_sweep_select``,
  ``additive_interpolant``;
- ``sweeps``: ``sweep_axis``, ``by_value``, ``dense_width``, ``train_sweep``.

Chapters write ``from moe_lib import fitting as ft``.
"""

from .random_features import (
    DEFAULT_RIDGE,
    RandomFeatureNet,
    additive_interpolant,
    fit_gaussian_features,
    fit_outer_layer,
    fit_random_features,
    fit_random_features_select,
    gaussian_relu_features,
    least_squares,
    relu_features,
    sample_relu_features,
    sup_error,
    width_sweep,
    width_sweep_select,
)
from .sweeps import by_value, dense_width, sweep_axis, train_sweep
from .train import (
    FitResult,
    cosine_lr,
    dataset_sampler,
    fit,
    function_sampler,
    linear_autoencoder,
    mse,
    predict,
    train_linear_autoencoder,
)

__all__ = [
    "DEFAULT_RIDGE", "RandomFeatureNet", "additive_interpolant", "fit_gaussian_features",
    "fit_outer_layer", "fit_random_features", "fit_random_features_select",
    "gaussian_relu_features", "least_squares", "relu_features", "sample_relu_features",
    "sup_error", "width_sweep", "width_sweep_select", "by_value", "dense_width", "sweep_axis",
    "train_sweep", "FitResult", "cosine_lr", "dataset_sampler", "fit", "function_sampler",
    "linear_autoencoder", "mse", "predict", "train_linear_autoencoder",
]
