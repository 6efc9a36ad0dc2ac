"""Optimization helpers: conjugate gradient and flat-parameter utilities (TRPO), shared optimizers.

Flat vectors concatenate parameters in the order given, each reshaped to one dimension, the
layout of ``torch.nn.utils.parameters_to_vector``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

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


# -- shared-state optimizers (A3C) -------------------------------------------------------------
#
# Optimizers whose state lives in shared memory, for Hogwild-style asynchronous training (A3C).
#
# ``torch.optim.Adam`` and ``RMSprop`` create their state (step count, moment estimates) lazily, in
# the first ``step``, as ordinary process-private tensors.  A3C workers all step *one* optimizer over
# the shared model's parameters, so here the state is allocated up front in ``__init__`` and moved to
# shared memory with ``share_memory_()`` before the optimizer is sent to the worker processes.  Every
# worker then reads and updates the same moments and the same ``step`` counters in place, without a
# lock (the Hogwild! scheme: occasional lost or interleaved updates are tolerated).
#
# The ``step`` counter is a 0-dim shared tensor that torch increments in place (``step_t += 1``), so
# Adam's bias correction follows the total number of updates made by all workers, not each worker's
# own count.  Sharing works for CPU tensors (and CUDA tensors, which torch shares through IPC).
#
# Lifecycle:
#
#     optimizer = SharedAdam(shared_model.parameters(), lr=7e-4)   # state allocated and shared here
#     # pass shared_model and optimizer to each process in the same pickle (Process args), so the
#     # parameters the optimizer references are the model's parameters in the child too
#     ... in a worker: write gradients into shared_param.grad, then optimizer.step()
#
# ``load_state_dict`` re-shares the loaded tensors; call ``share_memory()`` yourself after replacing
# state any other way.


def _scalar_dtype() -> torch.dtype:
    """The dtype torch's optimizers use for ``step`` counters (float64 only under a float64 default)."""
    return torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32


def _step_counter(p: torch.Tensor, on_param_device: bool) -> torch.Tensor:
    # Where torch keeps `step` itself: on the parameter's device for capturable/fused, else CPU.
    return torch.zeros((), dtype=_scalar_dtype(), device=p.device if on_param_device else "cpu")


class _SharedStateMixin:
    """share_memory() over every tensor of the optimizer state; load_state_dict keeps it shared."""

    state: Any
    param_groups: list[dict[str, Any]]

    def share_memory(self) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                for value in self.state[p].values():
                    if torch.is_tensor(value):
                        value.share_memory_()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)  # type: ignore[misc]
        self.share_memory()


class SharedAdam(_SharedStateMixin, torch.optim.Adam):
    """Adam with eagerly allocated, shared-memory state (step, exp_avg, exp_avg_sq, max_exp_avg_sq)."""

    def __init__(self, params, lr: float = 1e-3, **kwargs: Any):
        super().__init__(params, lr=lr, **kwargs)
        for group in self.param_groups:
            for p in group["params"]:
                state = self.state[p]
                state["step"] = _step_counter(p, group["capturable"] or group["fused"])
                state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                if group["amsgrad"]:
                    state["max_exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        self.share_memory()


class SharedRMSprop(_SharedStateMixin, torch.optim.RMSprop):
    """RMSprop with eagerly allocated, shared-memory state (step, square_avg, momentum, grad_avg)."""

    def __init__(self, params, lr: float = 1e-2, **kwargs: Any):
        super().__init__(params, lr=lr, **kwargs)
        for group in self.param_groups:
            for p in group["params"]:
                state = self.state[p]
                state["step"] = _step_counter(p, group["capturable"])
                state["square_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                if group["momentum"] > 0:
                    state["momentum_buffer"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                if group["centered"]:
                    state["grad_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        self.share_memory()


__all__ = ["SharedAdam", "SharedRMSprop"]
