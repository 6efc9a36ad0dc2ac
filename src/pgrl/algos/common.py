"""Functions the algorithm files share: batched values, minibatches, optimizer steps, statistics.

Reductions run over the last dimension, so one function serves a lone run's ``[B]`` tensors
and K stacked seeds' ``[K, B]`` alike (pgrl.batched trains K seeds through the same losses).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import nn

from pgrl.config import is_recurrent
from pgrl.errors import ConfigError, EnvError, TrainingError
from pgrl.fast import check_setting
from pgrl.obs import batch_from_user
from pgrl.policies import make_policy
from pgrl.policies.actor_critic import ActorCriticPolicy
from pgrl.policies.recurrent import Sequences

Metrics = dict[str, torch.Tensor | float]


@dataclass(frozen=True)
class Capabilities:
    """What an algorithm can do, read by runners, the CLI, compare and Ray instead of its name.

    runner: "synchronous" (collect, update, repeat: pgrl.loops.trainer) or "hogwild" (worker
    processes on shared parameters: pgrl.loops.hogwild).  ray: what Ray actors do for it
    ("rollouts", "gradients") or None.  batched_seeds: K seeds can train as one stacked batch
    (pgrl.batched).  exact_resume: a resumed run continues bit-identically (native envs).
    recurrent: trains LSTM policies (MlpLstmPolicy, ...): its update evaluates whole sequences;
    recurrent_note says why an algorithm that does not, does not.  fast_update: the update has
    pgrl.fast's compiled path for small MLP policies (fast_path=on needs it).
    """

    runner: Literal["synchronous", "hogwild"] = "synchronous"
    ray: Literal["rollouts", "gradients"] | None = "rollouts"
    batched_seeds: bool = False
    recurrent: bool = False
    recurrent_note: str = ""
    #: its update has a compiled fast path (pgrl.fast) for small MLP policies on a CPU
    fast_update: bool = False
    devices: tuple[str, ...] = ("cpu", "cuda")
    exact_resume: bool = True
    observation_spaces: tuple[str, ...] = ("Box", "Discrete", "MultiDiscrete", "MultiBinary", "Dict")
    action_spaces: tuple[str, ...] = ("Box", "Discrete", "MultiDiscrete", "MultiBinary")


def resolve_device(device: str | torch.device) -> torch.device:
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device '{device}' was asked for but this machine has no CUDA GPU; use --device cpu")
    if device != "cpu" and not device.startswith("cuda"):
        raise ConfigError(f"unknown device '{device}'; use cpu, cuda or auto")
    return torch.device(device)


def build_policy(algo, observation_space, action_space) -> ActorCriticPolicy:
    """``algo``'s policy (pgrl.policies.make_policy); ConfigError for an LSTM policy when ``algo``
    does not train those."""
    check_setting(algo)
    if is_recurrent(algo.config.policy) and not algo.capabilities.recurrent:
        takers = ", ".join(name for name, cls in type(algo).registry.items() if cls.capabilities.recurrent)
        raise ConfigError(f"{algo.name} does not train LSTM policies ({algo.config.policy}); {takers} do. "
                          f"{algo.capabilities.recurrent_note}".strip())
    return make_policy(algo.config, observation_space, action_space)


@torch.no_grad()
def rollout_values(policy, rollout, value=None) -> tuple[torch.Tensor, torch.Tensor]:
    """V(obs) and V(next_obs), both [T, N], in one batched forward pass (compact storage: over
    obs, last_obs and the final observations only; see pgrl.rollout.storage).  LSTM policies'
    values were computed while acting, from the recurrent state of each step.  ``value``: what
    computes V of a batch (default ``policy.value``; pgrl.fast passes its kernel's)."""
    if rollout.values is not None:
        return rollout.values, rollout.next_values()
    T, N = rollout.n_steps, rollout.num_envs
    value = value or policy.value
    if rollout.next_obs is not None:
        values = value(torch.cat([flatten(rollout.obs), flatten(rollout.next_obs)]))
        return values[: T * N].reshape(T, N), values[T * N :].reshape(T, N)
    finals = [final for _, _, final in rollout.finals]
    values = value(torch.cat([flatten(rollout.obs), rollout.last_obs, *finals]))
    obs_values = values[: T * N].reshape(T, N)
    next_values = torch.cat([obs_values[1:], values[T * N : T * N + N][None]])
    offset = T * N + N
    for t, envs, _ in rollout.finals:
        next_values[t, envs] = values[offset : offset + len(envs)]
        offset += len(envs)
    return obs_values, next_values


def training_budget(name: str, total_timesteps: int | None, n_timesteps: int | None) -> int:
    """``total_timesteps``, else the preset's ``n_timesteps``; ConfigError if neither or not positive."""
    total = total_timesteps if total_timesteps is not None else n_timesteps
    if total is None:
        raise ConfigError(f"{name} needs total_timesteps: this preset sets no n_timesteps")
    if int(total) <= 0:
        raise ConfigError(f"total_timesteps must be positive, got {total}")
    return int(total)


@torch.no_grad()
def predict(algo, observation, state, episode_start, deterministic: bool, action_masks=None):
    """``Algorithm.predict``: (actions, state) as SB3 and sb3-contrib return them.  actions: an
    ndarray in the action space's dtype, [B, ...] for a batch, without the batch dim for one
    observation (0-d for Discrete).  state: the given one for feed-forward policies; for LSTM
    policies the actor's (h, c), each [n_lstm_layers, B, hidden] (None in: zero states)."""
    if isinstance(observation, tuple) and len(observation) == 2 and isinstance(observation[1], dict):
        raise EnvError("predict got a tuple (observation, info), as env.reset() returns it; "
                       "pass the observation only: obs, info = env.reset(); model.predict(obs)")
    obs, single = batch_from_user(observation, algo.observation_space, algo.device)
    masks = None
    if action_masks is None and isinstance(obs, dict) and "action_mask" in obs:  # masks in the observation
        action_masks = obs["action_mask"].cpu().numpy()
    if action_masks is not None:
        masks = torch.as_tensor(np.asarray(action_masks, dtype=bool), device=algo.device).reshape(obs.shape[0], -1)
    policy = algo.policy
    if policy.recurrent:
        n = obs.shape[0]
        starts = None
        if episode_start is not None:
            starts = torch.as_tensor(np.asarray(episode_start, dtype=bool).reshape(-1), device=algo.device)
            if starts.shape[0] != n:
                raise EnvError(f"predict's episode_start has {starts.shape[0]} entries for {n} observation(s); "
                               "give one per observation")
        actions, _, _, after = policy.step(algo.normalize_obs(obs), policy.state_from_user(state, n), starts,
                                           deterministic=deterministic, action_masks=masks)
        state = policy.user_state(after)
    else:
        actions, _ = policy.act(algo.normalize_obs(obs), deterministic=deterministic, action_masks=masks)
    actions = policy.to_env(actions).cpu().numpy().astype(algo.action_space.dtype, copy=False)
    return (actions.squeeze(0) if single else actions), state


def require_own_extractors(algo) -> None:
    """ConfigError when actor and critic, stepped by optimizers of their own, would share one features extractor."""
    policy = algo.policy
    if policy.features_extractor is not None and policy.vf_features_extractor is None and not policy.shared:
        raise ConfigError(f"{algo.name} steps the actor and the critic with separate optimizers, which cannot share "
                          "a features extractor; set policy_kwargs.share_features_extractor=false")


def check_finite(algo, loss: torch.Tensor) -> None:
    """Stop with a sentence naming the algorithm and step when the loss is NaN or infinite."""
    if not bool(torch.isfinite(loss).all()):
        raise TrainingError(
            f"{algo.name} loss became {float(loss.sum())} at step {algo.num_timesteps}; "
            "lower learning_rate or max_grad_norm, or turn on normalize / normalize_reward"
        )


def flatten(x: torch.Tensor) -> torch.Tensor:
    """[T, N, ...] -> [T*N, ...]."""
    return x.reshape(x.shape[0] * x.shape[1], *x.shape[2:])


def flat_masks(rollout) -> torch.Tensor | None:
    """The rollout's stored action masks as [T*N, ...] (None when the env gives none)."""
    return None if rollout.action_masks is None else flatten(rollout.action_masks)


def rows(x: torch.Tensor | None, idx) -> torch.Tensor | None:
    """x[idx], passing None through (optional per-sample tensors such as action masks)."""
    return None if x is None else x[idx]


def minibatches(n: int, batch_size: int, device: torch.device) -> Iterator[torch.Tensor]:
    """Shuffled index batches covering range(n); the last batch may be shorter."""
    perm = torch.randperm(n, device=device)
    for start in range(0, n, batch_size):
        yield perm[start : start + batch_size]


def env_major(n_steps: int, num_envs: int, device: torch.device) -> torch.Tensor:
    """Time-major flat indices (t * N + env) in env-major order: env 0's steps, then env 1's, ..."""
    p = torch.arange(n_steps * num_envs, device=device)
    return (p % n_steps) * num_envs + p // n_steps


def batches(policy, rollout, batch_size: int) -> Iterator[tuple[torch.Tensor, Sequences | None]]:
    """PPO's minibatches as (indices into the [T*N] flattening, their Sequences or None).

    Feed-forward policies: shuffled samples (``minibatches``).  LSTM policies: whole sequences, as
    sb3-contrib's RecurrentPPO cuts them: the env-major order rolled by a random offset, split into
    batch_size chunks (taken in random order), each chunk cut into sequences at env changes and
    episode starts; a chunk that starts mid-episode starts from the state stored at that step."""
    T, N, device = rollout.n_steps, rollout.num_envs, rollout.rewards.device
    if not policy.recurrent:
        for idx in minibatches(T * N, batch_size, device):
            yield idx, None
        return
    order = torch.roll(env_major(T, N, device), -int(torch.randint(T * N, ())))
    chunks = order.split(batch_size)
    for k in torch.randperm(len(chunks)).tolist():
        yield chunks[k], sequences(rollout, chunks[k])


def sequences(rollout, idx: torch.Tensor) -> Sequences:
    """The Sequences rows ``idx`` of the [T*N] flattening form (an LSTM policy's evaluate takes them)."""
    return Sequences.of(idx, rollout.num_envs, flatten(rollout.episode_starts), flatten(rollout.states))


def make_optimizer(params, lr: float, kind: str) -> torch.optim.Optimizer:
    """Adam (fused kernel) or RMSprop (TensorFlow-style settings used by A2C implementations).

    The fused/foreach variants update all parameters in a few kernels instead of a Python
    loop over tensors, which matters when an update is thousands of small gradient steps.
    """
    params = list(params)
    _no_dynamo_import(torch.optim.Optimizer.add_param_group)
    if kind == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, alpha=0.99, eps=1e-5, foreach=True)
    return torch.optim.Adam(params, lr=lr, eps=1e-5, fused=True)


def _no_dynamo_import(method) -> None:
    """torch marks some Optimizer methods "not to be compiled" through a wrapper that imports
    torch._dynamo on its first call, 2.5 s of a process here, only to wrap the method once.  While
    torch._dynamo is not imported nothing is being compiled, so the mark is the method itself
    (the wrapper's own cache attribute); pgrl's fast path then never imports torch._dynamo."""
    inner = getattr(method, "__wrapped__", None)
    if inner is not None and "torch._dynamo" not in sys.modules and getattr(inner, "__dynamo_disable", None) is None:
        inner.__dynamo_disable = inner


def optimizer_step(
    optimizer: torch.optim.Optimizer, loss: torch.Tensor, params=None, max_grad_norm: float | None = None
) -> torch.Tensor | None:
    """zero_grad, backward, optional global-norm clipping, step; returns the pre-clip grad norm.

    ``params`` (the tensors to clip) defaults to the optimizer's own, which avoids walking the
    module tree on every minibatch.
    """
    own = [p for group in optimizer.param_groups for p in group["params"]]
    for p in own:  # zero_grad(set_to_none=True) without its per-call profiler and hook machinery
        p.grad = None
    loss.backward()
    norm = clip_grad_norm(own if params is None else params, max_grad_norm) if max_grad_norm is not None else None
    adam_step(optimizer)
    return norm


# torch's clip_grad_norm_ and Adam.step wrap a handful of kernels in layers of Python (argument
# checks, grouping by device, step hooks, compile guards) that cost more than the kernels on a
# small network's minibatch: a quarter of a PPO update on classic control.  These two call the
# same kernels with the same inputs, so the results are bit for bit torch's (tested), and fall
# back to torch's functions wherever that would not hold.

def clip_grad_norm(params, max_norm: float) -> torch.Tensor:
    """nn.utils.clip_grad_norm_(params, max_norm, foreach=True): the global 2-norm of the grads
    (returned) and every grad scaled by min(1, max_norm / (norm + 1e-6))."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads or len({(g.device, g.dtype) for g in grads}) > 1:
        return nn.utils.clip_grad_norm_(params, max_norm, foreach=True)
    with torch.no_grad():
        total = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads, 2.0)), 2.0)
        torch._foreach_mul_(grads, torch.clamp(float(max_norm) / (total + 1e-6), max=1.0))
    return total


def adam_step(optimizer: torch.optim.Optimizer) -> None:
    """optimizer.step(); for a fused torch.optim.Adam whose state exists, its fused kernel called
    directly (no step hooks run there: pgrl registers none)."""
    if type(optimizer) is not torch.optim.Adam or not optimizer.defaults.get("fused"):
        optimizer.step()
        return
    work = []
    for group in optimizer.param_groups:
        params = [p for p in group["params"] if p.grad is not None]
        states = [optimizer.state.get(p) for p in params]
        if (not all(states) or group["amsgrad"] or group["maximize"] or group["capturable"]
                or group.get("decoupled_weight_decay") or isinstance(group["lr"], torch.Tensor)
                or len({(p.device, p.dtype) for p in params}) > 1):
            optimizer.step()  # the first step makes the state; the uncommon options keep torch's path
            return
        work.append((group, params, states))
    with torch.no_grad():
        for group, params, states in work:
            if not params:
                continue
            steps = [state["step"] for state in states]
            torch._foreach_add_(steps, 1)
            beta1, beta2 = group["betas"]
            torch._fused_adam_(
                params, [p.grad for p in params], [state["exp_avg"] for state in states],
                [state["exp_avg_sq"] for state in states], [], steps, amsgrad=False, lr=group["lr"],
                beta1=beta1, beta2=beta2, weight_decay=group["weight_decay"], eps=group["eps"], maximize=False,
                grad_scale=None, found_inf=None,
            )


def set_learning_rate(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def explained_variance(predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - Var[target - predicted] / Var[target] over the last dim (nan where the target is constant)."""
    var = target.var(dim=-1)
    return torch.where(var > 0, 1 - (target - predicted).var(dim=-1) / var, torch.full_like(var, float("nan")))


def normalize(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Zero mean, unit std over the last dim (only centred when it holds one element)."""
    mean = x.mean(dim=-1, keepdim=True)
    if x.shape[-1] <= 1:
        return x - mean
    return (x - mean) / (x.std(dim=-1, keepdim=True) + eps)
