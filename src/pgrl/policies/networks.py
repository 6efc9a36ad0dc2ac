"""Network building blocks, and their stacked forms: K copies of a network run as one.

``stack_network`` turns K Sequentials of the same shape into one whose nn.Linear layers are
``StackedLinear`` (weight [K, out, in], one baddbmm on [K, B, in]); activations are elementwise
and stay as they are, except tanh, which becomes ``FastTanh``.  Written by hand rather than with
torch.func.vmap: on the small MLPs of classic control vmap's dispatch costs more than the matmuls.
"""

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


def run(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``net(x)``.  For the Sequentials ``mlp`` builds, the layers are applied as the functions they
    are: nn.Module.__call__ (hook dispatch, tracing checks) costs more than a 64-wide layer on a
    small batch, and a policy step runs a dozen of them.  The same functions on the same tensors,
    so the result is net(x)'s bit for bit; a module with hooks, or any other layer, is called."""
    if type(net) is not nn.Sequential or _hooked(net) or _global_hooks():
        return net(x)
    for layer in net._modules.values():
        kind = type(layer)
        if _hooked(layer):
            x = layer(x)
        elif kind is nn.Linear:  # _parameters: layer.weight would go through nn.Module.__getattr__
            params = layer._parameters
            x = nn.functional.linear(x, params["weight"], params["bias"])
        elif kind is nn.Tanh:
            x = torch.tanh(x)
        elif kind is nn.ReLU:
            x = torch.relu(x)
        else:
            x = layer(x)
    return x


def _hooked(module: nn.Module) -> bool:
    return bool(module._forward_hooks or module._forward_pre_hooks or module._backward_hooks
                or module._backward_pre_hooks)


_HOOKS = nn.modules.module


def _global_hooks() -> bool:
    return bool(_HOOKS._global_forward_hooks or _HOOKS._global_forward_pre_hooks or _HOOKS._global_backward_hooks
                or _HOOKS._global_backward_pre_hooks)


def output_dim(net: nn.Sequential, in_dim: int) -> int:
    """The width a Sequential of Linear layers ends with."""
    for layer in reversed(net):
        if isinstance(layer, nn.Linear):
            return layer.out_features
    return in_dim


class StackedLinear(nn.Module):
    """K nn.Linear layers of one shape: x [K, B, in] -> [K, B, out], layer k on x[k].

    Its parameters keep nn.Linear's names (``weight`` [K, out, in], ``bias`` [K, out]), so a
    stacked network's parameter names are those of the networks it was stacked from.
    """

    def __init__(self, layers: Sequence[nn.Linear]):
        super().__init__()
        self.weight = nn.Parameter(torch.stack([layer.weight.detach() for layer in layers]).contiguous())
        self.bias = nn.Parameter(torch.stack([layer.bias.detach() for layer in layers]).contiguous())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias.unsqueeze(1), x, self.weight.transpose(1, 2))


class _SigmoidTanh(torch.autograd.Function):
    """tanh(x) computed as 2·sigmoid(2x) − 1 (equal to within float32 rounding), with tanh's backward."""

    @staticmethod
    def forward(ctx, x):
        y = torch.sigmoid(x * 2.0).mul_(2.0).sub_(1.0)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        return torch.ops.aten.tanh_backward(grad, y)


class FastTanh(nn.Module):
    """tanh as 2·sigmoid(2x) − 1: on this CPU build torch.tanh is several times slower than
    torch.sigmoid on the [K, B, 64] activations of stacked seeds (docs/speed.md, "Many seeds at once");
    the backward reuses tanh's own kernel on the saved output."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled():
            return _SigmoidTanh.apply(x)
        return torch.sigmoid(x * 2.0).mul_(2.0).sub_(1.0)


def stack_network(nets: Sequence[nn.Module]) -> nn.Module:
    """K networks built by ``mlp`` with the same shape -> one running all K on [K, B, ...] inputs."""
    first = nets[0]
    if not isinstance(first, nn.Sequential):  # nn.Identity
        return first
    layers: list[nn.Module] = []
    for i, layer in enumerate(first):
        if isinstance(layer, nn.Linear):
            layers.append(StackedLinear([net[i] for net in nets]))
        elif isinstance(layer, nn.Tanh):
            layers.append(FastTanh())
        else:
            layers.append(layer)  # the other activations are elementwise
    return nn.Sequential(*layers)


__all__ = ["ACTIVATIONS", "FastTanh", "StackedLinear", "layer_init", "mlp", "output_dim", "run", "stack_network",
           "torch"]
