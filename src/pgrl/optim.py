"""Optimization helpers: conjugate gradient and flat-parameter utilities (TRPO), shared optimizers.

Flat vectors concatenate parameters in the order given, each reshaped to one dimension, the
layout of ``torch.nn.utils.parameters_to_vector``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import torch
from torch import nn

# -- conjugate gradient and flat parameters (TRPO) ---------------------------------------------


def conjugate_gradient(
    matvec: Callable[[torch.Tensor], torch.Tensor],
    b: torch.Tensor,
    n_iters: int = 10,
    residual_tol: float = 1e-10,
) -> torch.Tensor:
    """Approximately solve A x = b for a symmetric positive-definite A given only x -> A x.

    Starts from x = 0 and stops after ``n_iters`` products or once the squared residual
    |b - A x|^2 is at most ``residual_tol``.  b: [n] -> x: [n].
    """
    x = torch.zeros_like(b)
    r = b.clone()  # residual b - A x
    p = b.clone()  # search direction
    r_dot_r = r @ r
    for _ in range(n_iters):
        if float(r_dot_r) <= residual_tol:
            break
        a_p = matvec(p)
        alpha = r_dot_r / (p @ a_p)
        x = x + alpha * p
        r = r - alpha * a_p
        new_r_dot_r = r @ r
        p = r + (new_r_dot_r / r_dot_r) * p
        r_dot_r = new_r_dot_r
    return x


def flat_grad(
    output: torch.Tensor,
    params: Sequence[torch.Tensor],
    retain_graph: bool = False,
    create_graph: bool = False,
) -> torch.Tensor:
    """d output / d params as one flat vector; parameters output does not depend on get zeros."""
    grads = torch.autograd.grad(
        output, list(params), retain_graph=retain_graph, create_graph=create_graph, allow_unused=True
    )
    pairs = zip(grads, params, strict=True)
    return torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1) for g, p in pairs])


def flat_params(params: Iterable[torch.Tensor]) -> torch.Tensor:
    """The parameters' current values as one flat vector (a copy)."""
    return nn.utils.parameters_to_vector(params).detach().clone()


@torch.no_grad()
def set_flat_params(params: Iterable[torch.Tensor], flat: torch.Tensor) -> None:
    """Copy ``flat`` into the parameters in place (their storage, and any sharing of it, is kept).

    Unlike ``torch.nn.utils.vector_to_parameters`` the parameters do not become views of ``flat``.
    """
    offset = 0
    for p in params:
        n = p.numel()
        p.copy_(flat[offset : offset + n].view_as(p))
        offset += n
    if offset != flat.numel():
        raise ValueError(f"flat vector has {flat.numel()} values but the parameters hold {offset}")
