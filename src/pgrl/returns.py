"""Pure return and advantage estimators over time-major rollouts.

All inputs are [T, N] tensors (T steps of N environments), float except the boolean flags.
``next_values[t]`` is V(s_{t+1}) where s_{t+1} is the observation step t reached *before* any
automatic reset (the "final observation" when an episode ended), so:

- terminated[t]: the episode ended in a terminal state; nothing is bootstrapped.
- truncated[t] (and not terminated): the episode was cut (time limit); bootstrap from
  next_values[t].
- step T-1 of the rollout: the trajectory leaves storage; bootstrap from next_values[T-1].

Keeping "the episode ended" (terminated | truncated) apart from "do not bootstrap" (terminated)
is what makes time-limit truncation correct.  The loops run backwards over T with one tensor op
per step over all N environments; T is small (tens to a few thousand), N is the wide axis.
"""

from __future__ import annotations

import numpy as np
import torch


def _check(name: str, x: torch.Tensor, like: torch.Tensor) -> None:
    if x.shape != like.shape:
        raise ValueError(
            f"{name} has shape {tuple(x.shape)} but rewards have {tuple(like.shape)}; all must be [T, N]"
        )


def reward_to_go(rewards: torch.Tensor, dones: torch.Tensor, gamma: float) -> torch.Tensor:
    """Monte-Carlo discounted reward-to-go, G_t = r_t + gamma * G_{t+1}, restarting after each done.

    Never bootstraps (REINFORCE, VPG): a truncated episode is treated as ended.
    rewards, dones: [T, N] -> returns [T, N].
    """
    _check("dones", dones, rewards)
    keep = (~dones.bool()).to(rewards.dtype)
    returns = torch.empty_like(rewards)
    running = torch.zeros_like(rewards[0])
    for t in range(rewards.shape[0] - 1, -1, -1):
        running = rewards[t] + gamma * keep[t] * running
        returns[t] = running
    return returns


def _continues(terminated: torch.Tensor, truncated: torch.Tensor) -> torch.Tensor:
    """1.0 where step t+1 in storage continues the trajectory of step t, else 0.0 ([T, N])."""
    cont = (~(terminated.bool() | truncated.bool())).float()
    cont[-1] = 0.0
    return cont


def n_step_returns(
    rewards: torch.Tensor,
    next_values: torch.Tensor,
    terminated: torch.Tensor,
    truncated: torch.Tensor,
    gamma: float,
) -> torch.Tensor:
    """Bootstrapped discounted returns, the A2C/A3C target with n up to the rollout length.

    R_t = r_t + gamma * (1 - terminated_t) * (R_{t+1} if the trajectory continues in storage
    else V(s'_t)).  All inputs [T, N] -> returns [T, N].
    """
    for name, x in (("next_values", next_values), ("terminated", terminated), ("truncated", truncated)):
        _check(name, x, rewards)
    alive = (~terminated.bool()).to(rewards.dtype)
    cont = _continues(terminated, truncated).to(rewards.dtype)
    returns = torch.empty_like(rewards)
    running = torch.zeros_like(rewards[0])
    for t in range(rewards.shape[0] - 1, -1, -1):
        tail = cont[t] * running + (1.0 - cont[t]) * next_values[t]
        running = rewards[t] + gamma * alive[t] * tail
        returns[t] = running
    return returns


def gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    next_values: torch.Tensor,
    terminated: torch.Tensor,
    truncated: torch.Tensor,
    gamma: float,
    lam: float,
) -> torch.Tensor:
    """Generalized advantage estimation, GAE(gamma, lambda).

    delta_t = r_t + gamma * (1 - terminated_t) * V(s'_t) - V(s_t)
    A_t     = delta_t + gamma * lambda * c_t * A_{t+1},  c_t = 1 iff step t+1 continues step t.

    lambda = 0 gives the one-step TD error; lambda = 1 gives n_step_returns - values.
    All inputs [T, N] -> advantages [T, N]; the returns target is advantages + values.
    """
    for name, x in (
        ("values", values),
        ("next_values", next_values),
        ("terminated", terminated),
        ("truncated", truncated),
    ):
        _check(name, x, rewards)
    deltas = td_errors(rewards, values, next_values, terminated, gamma)
    decay = gamma * lam * _continues(terminated, truncated).to(rewards.dtype)
    return backward_scan(deltas, decay)


def backward_scan(x: torch.Tensor, decay: torch.Tensor) -> torch.Tensor:
    """y_t = x_t + decay_t * y_{t+1} (y_T = 0) over the leading time dim of [T, ...] tensors.

    On the CPU the T-step loop runs on the tensors' memory in pgrl.fast's compiled kernel (NumPy
    when numba is missing): the same float operations in the same order (so the same result, bit
    for bit, whatever ``fast_path`` says), at a fraction of a torch op's dispatch cost, which adds
    up over a rollout's hundreds of steps.
    """
    if x.device.type == "cpu" and not (x.requires_grad or decay.requires_grad):
        xs, ds = x.detach().contiguous().numpy(), decay.detach().contiguous().numpy()
        out = np.empty_like(xs)
        kernels = _kernels()
        if kernels is not None and xs.size and xs.dtype == ds.dtype:  # compiled: no per-step dispatch
            shape = (xs.shape[0], -1)
            kernels.backward_scan(xs.reshape(shape), ds.reshape(shape), out.reshape(shape))
            return torch.from_numpy(out)
        running = np.zeros_like(xs[0])
        for t in range(xs.shape[0] - 1, -1, -1):
            running = xs[t] + ds[t] * running
            out[t] = running
        return torch.from_numpy(out)
    out = torch.empty_like(x)
    running = torch.zeros_like(x[0])
    for t in range(x.shape[0] - 1, -1, -1):
        running = x[t] + decay[t] * running
        out[t] = running
    return out


def _kernels():
    """pgrl.fast.kernels when numba is installed (imported on first use), else None."""
    global _KERNELS
    if _KERNELS is None:
        try:
            from pgrl.fast import kernels
        except ImportError:
            kernels = False
        _KERNELS = kernels
    return _KERNELS or None


_KERNELS = None


def td_errors(
    rewards: torch.Tensor,
    values: torch.Tensor,
    next_values: torch.Tensor,
    terminated: torch.Tensor,
    gamma: float,
) -> torch.Tensor:
    """One-step TD errors r_t + gamma * (1 - terminated_t) * V(s'_t) - V(s_t); all inputs of one shape."""
    for name, x in (("values", values), ("next_values", next_values), ("terminated", terminated)):
        _check(name, x, rewards)
    return rewards + gamma * torch.where(terminated.bool(), 0.0, next_values) - values


def discount_weights(dones: torch.Tensor, gamma: float, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """gamma**k where k counts the steps since the current episode started ([T, N] -> [T, N]).

    The gamma^t factor of the policy-gradient theorem for the discounted objective, as the
    REINFORCE and VPG chapters weigh each step's term.
    """
    dones = dones.bool()
    k = torch.zeros(dones.shape, dtype=dtype, device=dones.device)
    step = torch.zeros_like(k[0])
    for t in range(dones.shape[0]):
        k[t] = step
        step = torch.where(dones[t], torch.zeros_like(step), step + 1.0)
    return torch.pow(torch.tensor(gamma, dtype=dtype, device=dones.device), k)
