"""Optimizers whose state lives in shared memory, for Hogwild-style asynchronous training (A3C).

``torch.optim.Adam`` and ``RMSprop`` create their state (step count, moment estimates) lazily, in
the first ``step``, as ordinary process-private tensors.  A3C workers all step *one* optimizer over
the shared model's parameters, so here the state is allocated up front in ``__init__`` and moved to
shared memory with ``share_memory_()`` before the optimizer is sent to the worker processes.  Every
worker then reads and updates the same moments and the same ``step`` counters in place, without a
lock (the Hogwild! scheme: occasional lost or interleaved updates are tolerated).

The ``step`` counter is a 0-dim shared tensor that torch increments in place (``step_t += 1``), so
Adam's bias correction follows the total number of updates made by all workers, not each worker's
own count.  Sharing works for CPU tensors (and CUDA tensors, which torch shares through IPC).

Lifecycle:

    optimizer = SharedAdam(shared_model.parameters(), lr=7e-4)   # state allocated and shared here
    # pass shared_model and optimizer to each process in the same pickle (Process args), so the
    # parameters the optimizer references are the model's parameters in the child too
    ... in a worker: write gradients into shared_param.grad, then optimizer.step()

``load_state_dict`` re-shares the loaded tensors; call ``share_memory()`` yourself after replacing
state any other way.
"""

from __future__ import annotations

from typing import Any

import torch


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
