"""Network building blocks."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

ACTIVATIONS: dict[str, type[nn.Module]] = {"tanh": nn.Tanh, "relu": nn.ReLU, "elu": nn.ELU, "gelu": nn.GELU}


def layer_init(layer: nn.Linear, gain: float = math.sqrt(2.0), bias: float = 0.0) -> nn.Linear:
    """Orthogonal weights with the given gain and a constant bias."""
    nn.init.orthogonal_(layer.weight, gain)
    nn.init.constant_(layer.bias, bias)
    return layer


def mlp(
    in_dim: int,
    hidden: Sequence[int],
    out_dim: int | None,
    activation: str = "tanh",
    ortho_init: bool = True,
    out_gain: float = 1.0,
) -> nn.Sequential:
    """in_dim -> hidden... -> out_dim (no activation after the last layer); out_dim None ends at the last hidden."""
    act = ACTIVATIONS[activation]
    layers: list[nn.Module] = []
    prev = in_dim
    for width in hidden:
        linear = nn.Linear(prev, width)
        layers += [layer_init(linear) if ortho_init else linear, act()]
        prev = width
    if out_dim is not None:
        linear = nn.Linear(prev, out_dim)
        layers.append(layer_init(linear, gain=out_gain) if ortho_init else linear)
    return nn.Sequential(*layers)


def output_dim(net: nn.Sequential, in_dim: int) -> int:
    """The width a Sequential of Linear layers ends with."""
    for layer in reversed(net):
        if isinstance(layer, nn.Linear):
            return layer.out_features
    return in_dim


__all__ = ["ACTIVATIONS", "layer_init", "mlp", "output_dim", "torch"]
