"""The actor-critic policy every pgrl algorithm trains.

Actor and critic are separate MLPs by default (``shared=False``) or one trunk with two heads
(``shared=True``, the A2C layout of the reference chapter).  Box actions use a diagonal Gaussian
with a state-independent, learned log-std; actions are sampled unbounded and clipped to the
space's bounds only when they are sent to the environment (see ``to_env``).

| method                     | input               | output                                   |
|----------------------------|---------------------|------------------------------------------|
| act(obs)                   | obs [B, *obs_shape] | actions [B] or [B, d], log_probs [B]     |
| value(obs)                 | obs [B, *obs_shape] | values [B]                               |
| evaluate(obs, actions)     | obs, actions        | log_probs [B], entropy [B], values [B]   |
| distribution(obs)          | obs                 | Categorical or DiagGaussian over B rows  |

``ActorCriticPolicy.stack(policies, generators)`` makes one policy of K of the same shape: its
nn.Linear layers become ``StackedLinear`` ([K, out, in] weights, one batched matmul), and the
same methods then take [K, B, *obs_shape] inputs and give [K, B(, d)] outputs, seed k's rows
from policy k.  Seed k's sampling noise (actions, gSDE matrices) is drawn from generators[k];
``write_back`` copies seed k's parameters into policies[k].  pgrl.batched trains K seeds so.
"""

from __future__ import annotations

import copy
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from pgrl.errors import ConfigError, EnvError
from pgrl.policies.distributions import Categorical, DiagGaussian, per_seed_noise
from pgrl.policies.networks import mlp, output_dim, stack_network


def _arch(net_arch: Any) -> tuple[list[int], list[int]]:
    if isinstance(net_arch, dict):
        return list(net_arch.get("pi", [])), list(net_arch.get("vf", []))
    return list(net_arch), list(net_arch)


def check_spaces(observation_space: gym.Space, action_space: gym.Space, algo: str = "pgrl") -> None:
    """Raise EnvError naming the space when the policy cannot handle it."""
    if not isinstance(observation_space, gym.spaces.Box | gym.spaces.Discrete):
        raise EnvError(
            f"{algo} handles Box and Discrete observation spaces, not {observation_space}; "
            "flatten the observations with gymnasium.wrappers.FlattenObservation first"
        )
    if isinstance(action_space, gym.spaces.Box):
        if len(action_space.shape) != 1:
            raise EnvError(f"{algo} handles 1-D Box action spaces, not shape {action_space.shape}")
    elif not isinstance(action_space, gym.spaces.Discrete):
        raise EnvError(
            f"{algo} handles Discrete and Box action spaces, not {type(action_space).__name__} {action_space}; "
            "pick an environment with one of those or wrap it"
        )


class ActorCriticPolicy(nn.Module):
    def __init__(
        self,
        observation_space: gym.Space,
        action_space: gym.Space,
        net_arch: list[int] | dict[str, list[int]] = (64, 64),
        activation_fn: str = "tanh",
        shared: bool = False,
        log_std_init: float = 0.0,
        ortho_init: bool = True,
        use_sde: bool = False,
    ):
        super().__init__()
        check_spaces(observation_space, action_space)
        self.observation_space, self.action_space = observation_space, action_space
        self.discrete_obs = isinstance(observation_space, gym.spaces.Discrete)
        obs_dim = int(observation_space.n) if self.discrete_obs else int(np.prod(observation_space.shape))
        self.continuous = isinstance(action_space, gym.spaces.Box)
        act_dim = action_space.shape[0] if self.continuous else int(action_space.n)
        pi_arch, vf_arch = _arch(net_arch)
        self.shared = shared
        if shared:
            if isinstance(net_arch, dict):
                raise ConfigError(
                    "policy_kwargs.shared=true takes net_arch as one list of widths (e.g. [64, 64]), not {pi, vf}"
                )
            self.trunk = mlp(obs_dim, pi_arch, None, activation_fn, ortho_init)
            self.pi_body, self.vf_body = nn.Identity(), nn.Identity()
        else:
            self.trunk = nn.Identity()
            self.pi_body = mlp(obs_dim, pi_arch, None, activation_fn, ortho_init)
            self.vf_body = mlp(obs_dim, vf_arch, None, activation_fn, ortho_init)
        pi_width = output_dim(self.trunk, obs_dim) if shared else output_dim(self.pi_body, obs_dim)
        vf_width = pi_width if shared else output_dim(self.vf_body, obs_dim)
        # Small final gains: near-uniform initial policy, near-zero initial values (as in PPO's
        # reference implementations).
        self.pi_head = mlp(pi_width, [], act_dim, ortho_init=ortho_init, out_gain=0.01)
        self.vf_head = mlp(vf_width, [], 1, ortho_init=ortho_init, out_gain=1.0)
        self.use_sde = bool(use_sde) and self.continuous
        #: K for a policy made by ``stack`` (inputs [K, B, ...]), None for one policy (inputs [B, ...])
        self.n_stacked: int | None = None
        #: per-seed random streams of a stacked policy (None: the global stream)
        self.generators: list[torch.Generator] | None = None
        if self.continuous:
            # gSDE: one log-std per (latent unit, action dim); otherwise one per action dim.
            shape = (pi_width, act_dim) if self.use_sde else (act_dim,)
            self.log_std = nn.Parameter(torch.full(shape, float(log_std_init)))
            self._exploration: torch.Tensor | None = None
            self.register_buffer("action_low", torch.as_tensor(action_space.low, dtype=torch.float32))
            self.register_buffer("action_high", torch.as_tensor(action_space.high, dtype=torch.float32))

    # -- K policies as one ------------------------------------------------------------------------
    @classmethod
    def stack(
        cls, policies: list[ActorCriticPolicy], generators: list[torch.Generator] | None = None
    ) -> ActorCriticPolicy:
        """One policy running ``policies`` (all of one shape) on [K, B, ...] inputs; see the module docstring."""
        first = policies[0]
        stacked = copy.copy(first)  # the attributes and buffers; modules and parameters replaced below
        stacked._modules = dict(first._modules)
        stacked._parameters = dict(first._parameters)
        for name in ("trunk", "pi_body", "vf_body", "pi_head", "vf_head"):
            setattr(stacked, name, stack_network([getattr(policy, name) for policy in policies]))
        if first.continuous:
            stacked.log_std = nn.Parameter(torch.stack([p.log_std.detach() for p in policies]).contiguous())
            stacked._exploration = None
        stacked.n_stacked, stacked.generators = len(policies), generators
        return stacked

    @torch.no_grad()
    def write_back(self, policies: list[ActorCriticPolicy]) -> None:
        """Copy seed k's parameters of this stacked policy into policies[k]."""
        params = dict(self.named_parameters())
        for k, policy in enumerate(policies):
            for name, param in policy.named_parameters():
                param.copy_(params[name][k])

    # -- parameter groups (algorithms with separate optimizers use these) --------------------
    def actor_parameters(self) -> list[nn.Parameter]:
        params = (
            list(self.trunk.parameters()) + list(self.pi_body.parameters()) + list(self.pi_head.parameters())
        )
        return params + ([self.log_std] if self.continuous else [])

    def critic_parameters(self) -> list[nn.Parameter]:
        shared = list(self.trunk.parameters()) if self.shared else []
        return shared + list(self.vf_body.parameters()) + list(self.vf_head.parameters())

    # -- forward passes -------------------------------------------------------------------------
    def _features(self, obs: torch.Tensor) -> torch.Tensor:
        lead = obs.shape[: 2 if self.n_stacked else 1]  # [B] or [K, B]
        if self.discrete_obs:
            obs = nn.functional.one_hot(obs.long().reshape(-1), int(self.observation_space.n)).float()
        flat = obs.reshape(*lead, -1).float()
        return self.trunk(flat) if self.shared else flat  # skip the Identity call in the hot path

    def _dist(self, features: torch.Tensor) -> Categorical | DiagGaussian:
        return self._latent_dist(features)[1]

    def _latent_dist(self, features: torch.Tensor) -> tuple[torch.Tensor, Categorical | DiagGaussian]:
        latent = features if self.shared else self.pi_body(features)
        out = self.pi_head(latent)
        if not self.continuous:
            return latent, Categorical(out)
        if not self.use_sde:
            # a stacked policy's log_std [K, d] broadcasts over each seed's rows as [K, 1, d]
            return latent, DiagGaussian(out, self.log_std.unsqueeze(1) if self.n_stacked else self.log_std)
        # gSDE: the action noise is latent @ theta with theta ~ N(0, std^2), so given the state the
        # action is Gaussian with variance (latent^2) @ std^2 (latent detached, as in SB3's default).
        variance = latent.detach().pow(2) @ torch.exp(2 * self.log_std)
        return latent, DiagGaussian(out, 0.5 * torch.log(variance + 1e-6))

    def distribution(self, obs: torch.Tensor) -> Categorical | DiagGaussian:
        return self._dist(self._features(obs))

    def reset_noise(self, n_envs: int) -> None:
        """Draw new gSDE exploration matrices, one per environment ([n_envs, latent, act_dim];
        stacked: [K, n_envs, latent, act_dim], seed k's from generators[k])."""
        if not self.use_sde:
            return
        std = torch.exp(self.log_std.detach())
        if self.n_stacked is None:
            noise = torch.randn((n_envs, *std.shape), device=std.device)
        else:
            std = std.unsqueeze(1)
            noise = torch.empty((std.shape[0], n_envs, *std.shape[2:]), device=std.device)
            noise = per_seed_noise(noise, self.generators, "normal")
        self._exploration = noise * std

    def _value(self, features: torch.Tensor) -> torch.Tensor:
        return self.vf_head(features if self.shared else self.vf_body(features)).squeeze(-1)

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        return self._value(self._features(obs))

    def act(self, obs: torch.Tensor, deterministic: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        latent, dist = self._latent_dist(self._features(obs))
        if deterministic:
            actions = dist.mode()
        elif self.use_sde:
            n_envs = latent.shape[-2]
            if self._exploration is None or self._exploration.shape[-3] != n_envs:
                self.reset_noise(n_envs)
            actions = dist.mean + torch.matmul(latent.detach().unsqueeze(-2), self._exploration).squeeze(-2)
        else:
            actions = dist.sample(self.generators)
        return actions, dist.log_prob(actions)

    def evaluate(
        self, obs: torch.Tensor, actions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        features = self._features(obs)
        dist = self._dist(features)
        return dist.log_prob(actions), dist.entropy(), self._value(features)

    def to_env(self, actions: torch.Tensor) -> torch.Tensor:
        """Actions as the environment takes them: Box actions clipped to the space's bounds."""
        if self.continuous:
            return torch.clamp(actions, self.action_low, self.action_high)
        return actions
