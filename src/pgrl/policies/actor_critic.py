"""The actor-critic policy every pgrl algorithm trains.

Observations go through a features extractor (pgrl.policies.features: flatten for MlpPolicy,
a Nature CNN for CnnPolicy, one per key for MultiInputPolicy), shared by actor and critic unless
``share_features_extractor=False``; plain Box and Discrete observations with MlpPolicy take a
shorter path with no extractor call.  Actor and critic are then separate MLPs by default
(``shared=False``) or one trunk with two heads (``shared=True``, the A2C layout of the reference
chapter).

| action space    | distribution                   | stored action      | sent to the env            |
|-----------------|--------------------------------|--------------------|----------------------------|
| Discrete        | Categorical                    | [B] int64          | as stored                  |
| Box (any shape) | diagonal Gaussian (or gSDE)    | [B, d] float32     | clipped, in the space's shape |
| MultiDiscrete   | one Categorical per entry      | [B, d] int64       | in nvec's shape            |
| MultiBinary     | one Bernoulli per entry        | [B, d] float32 0/1 | in the space's shape       |

Gaussian actions are sampled unbounded and clipped only when sent to the environment.

| method                     | input               | output                                   |
|----------------------------|---------------------|------------------------------------------|
| act(obs)                   | obs [B, *obs_shape] | actions [B] or [B, d], log_probs [B]     |
| value(obs)                 | obs [B, *obs_shape] | values [B]                               |
| evaluate(obs, actions)     | obs, actions        | log_probs [B], entropy [B], values [B]   |
| distribution(obs)          | obs                 | the action distribution over B rows      |

(Dict observations come as a pgrl.obs.TensorDict of such batches.)

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
from pgrl.obs import TensorDict, check_action_space, check_observation_space, is_image_space
from pgrl.policies import features
from pgrl.policies.distributions import (
    Bernoulli,
    Categorical,
    DiagGaussian,
    Distribution,
    MultiCategorical,
    per_seed_noise,
)
from pgrl.policies.networks import mlp, output_dim, run, stack_network


def _arch(net_arch: Any) -> tuple[list[int], list[int]]:
    if isinstance(net_arch, dict):
        return list(net_arch.get("pi", [])), list(net_arch.get("vf", []))
    return list(net_arch), list(net_arch)


def check_spaces(observation_space: gym.Space, action_space: gym.Space, algo: str = "pgrl") -> None:
    """Raise EnvError naming the space when the policy cannot handle it."""
    check_observation_space(observation_space, algo)
    check_action_space(action_space, algo)


def action_width(action_space: gym.Space) -> int:
    """Outputs of the actor's head: logits or means."""
    if isinstance(action_space, gym.spaces.Discrete):
        return int(action_space.n)
    if isinstance(action_space, gym.spaces.MultiDiscrete):
        return int(np.sum(action_space.nvec))
    return int(np.prod(action_space.shape))


def stored_action_shape(action_space: gym.Space) -> tuple[int, ...]:
    """An action's shape in rollouts: () for Discrete, (d,) flattened for the others."""
    if isinstance(action_space, gym.spaces.Discrete):
        return ()
    return (int(np.prod(action_space.shape)),)


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
        features_extractor_class: Any = None,
        features_extractor_kwargs: dict | None = None,
        share_features_extractor: bool = True,
        normalize_images: bool = True,
    ):
        super().__init__()
        check_spaces(observation_space, action_space)
        self.observation_space, self.action_space = observation_space, action_space
        self.discrete_obs = isinstance(observation_space, gym.spaces.Discrete)
        self.normalize_images = normalize_images
        # Plain Box (not an image) and Discrete observations with the flatten extractor skip the
        # extractor call: reshape and one-hot inline (the native envs' hot path).
        plain = isinstance(observation_space, gym.spaces.Discrete) or (
            isinstance(observation_space, gym.spaces.Box) and not is_image_space(observation_space))
        extractor = features.extractor_class(features_extractor_class or "FlattenExtractor")
        if isinstance(observation_space, gym.spaces.Dict) and extractor is features.FlattenExtractor:
            raise ConfigError(f"Dict observation spaces ({', '.join(observation_space.spaces)}) take the policy "
                              "'MultiInputPolicy' (a CombinedExtractor), not MlpPolicy")
        self.features_extractor = self.vf_features_extractor = None
        if plain and extractor is features.FlattenExtractor and not features_extractor_kwargs:
            obs_dim = features.flat_dim(observation_space)
        else:
            self.features_extractor = self._make_extractor(extractor, features_extractor_kwargs, ortho_init)
            if not share_features_extractor:
                self.vf_features_extractor = self._make_extractor(extractor, features_extractor_kwargs, ortho_init)
            obs_dim = self.features_extractor.features_dim
        self.continuous = isinstance(action_space, gym.spaces.Box)
        self.action_dtype = torch.int64 if isinstance(action_space, gym.spaces.Discrete | gym.spaces.MultiDiscrete) \
            else torch.float32
        self.action_shape = stored_action_shape(action_space)
        self.maskable = isinstance(action_space, gym.spaces.Discrete | gym.spaces.MultiDiscrete)
        act_dim = action_width(action_space)
        if isinstance(action_space, gym.spaces.MultiDiscrete):
            self.nvec = tuple(int(n) for n in np.asarray(action_space.nvec).reshape(-1))
        pi_arch, vf_arch = _arch(net_arch)
        self.shared = shared
        obs_dim = self._memory(obs_dim)  # LSTM policies: the bodies read the LSTM's outputs
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
            self.register_buffer("action_low", torch.as_tensor(action_space.low.reshape(-1), dtype=torch.float32))
            self.register_buffer("action_high", torch.as_tensor(action_space.high.reshape(-1), dtype=torch.float32))

    #: LSTM policies (pgrl.policies.recurrent) act with a state and evaluate whole sequences
    recurrent = False

    def _memory(self, features_dim: int) -> int:
        """Build what sits between the features and the MLP bodies; returns the bodies' input width."""
        return features_dim

    def _make_extractor(self, cls, kwargs: dict | None, ortho_init: bool) -> nn.Module:
        space = features.preprocessed_space(self.observation_space)
        try:
            extractor = cls(space, **dict(kwargs or {}))
        except TypeError as exc:
            raise ConfigError(f"features_extractor_class {getattr(cls, '__name__', cls)} could not be built with "
                              f"features_extractor_kwargs {kwargs or {}} ({exc})") from None
        if not isinstance(getattr(extractor, "features_dim", None), int):
            raise ConfigError(f"features extractor {type(extractor).__name__} has no integer features_dim; "
                              "subclass pgrl.policies.BaseFeaturesExtractor")
        if ortho_init and cls in features.EXTRACTORS.values():
            features.init_extractor(extractor)
        return extractor

    # -- K policies as one ------------------------------------------------------------------------
    @classmethod
    def stack(
        cls, policies: list[ActorCriticPolicy], generators: list[torch.Generator] | None = None
    ) -> ActorCriticPolicy:
        """One policy running ``policies`` (all of one shape) on [K, B, ...] inputs; see the module docstring."""
        first = policies[0]
        if first.recurrent:
            raise ConfigError("batched seeds (pgrl.batched) stack MLP policies; an LSTM policy's seeds train one "
                              "by one")
        if first.features_extractor is not None:
            raise ConfigError("batched seeds (pgrl.batched) stack MLP policies on Box and Discrete observations; "
                              f"this policy has a {type(first.features_extractor).__name__}: train its seeds one "
                              "by one")
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
        extractor = list(self.features_extractor.parameters()) if self.features_extractor is not None else []
        params = extractor + (
            list(self.trunk.parameters()) + list(self.pi_body.parameters()) + list(self.pi_head.parameters())
        )
        return params + ([self.log_std] if self.continuous else [])

    def critic_parameters(self) -> list[nn.Parameter]:
        """The critic's own parameters plus what it shares with the actor (trunk, extractor)."""
        shared = list(self.trunk.parameters()) if self.shared else []
        if self.vf_features_extractor is not None:
            shared += list(self.vf_features_extractor.parameters())
        elif self.features_extractor is not None:
            shared += list(self.features_extractor.parameters())
        return shared + list(self.vf_body.parameters()) + list(self.vf_head.parameters())

    # -- forward passes -------------------------------------------------------------------------
    def _features(self, obs) -> tuple[torch.Tensor, torch.Tensor]:
        """The actor's and the critic's inputs (one tensor twice unless the extractors are separate)."""
        lead = obs.shape[: 2 if self.n_stacked else 1]  # [B] or [K, B]
        if self.features_extractor is None:
            if self.discrete_obs:
                obs = features.one_hot(obs.reshape(-1), int(self.observation_space.n))
            flat = obs.reshape(*lead, -1).float()
            flat = run(self.trunk, flat) if self.shared else flat  # skip the Identity call in the hot path
            return flat, flat
        flat_obs = obs.reshape(-1) if isinstance(obs, TensorDict) else obs.reshape(-1, *obs.shape[len(lead):])
        x = features.preprocess(flat_obs, self.observation_space, self.normalize_images)
        pi = self.features_extractor(x)
        vf = self.vf_features_extractor(x) if self.vf_features_extractor is not None else pi
        pi, vf = pi.reshape(*lead, -1), vf.reshape(*lead, -1)
        if self.shared:
            return (run(self.trunk, pi),) * 2 if vf is pi else (run(self.trunk, pi), run(self.trunk, vf))
        return pi, vf

    def _dist(self, features: tuple[torch.Tensor, torch.Tensor], action_masks=None) -> Distribution:
        return self._latent_dist(features, action_masks)[1]

    def _latent_dist(self, features: tuple[torch.Tensor, torch.Tensor],
                     action_masks: torch.Tensor | None = None) -> tuple[torch.Tensor, Distribution]:
        latent = features[0] if self.shared else run(self.pi_body, features[0])
        out = run(self.pi_head, latent)
        if action_masks is not None and not self.maskable:
            raise EnvError(f"action masks apply to Discrete and MultiDiscrete action spaces, not {self.action_space}")
        if isinstance(self.action_space, gym.spaces.Discrete):
            return latent, Categorical(out, action_masks)
        if isinstance(self.action_space, gym.spaces.MultiDiscrete):
            return latent, MultiCategorical(out, self.nvec, action_masks)
        if isinstance(self.action_space, gym.spaces.MultiBinary):
            return latent, Bernoulli(out)
        if not self.use_sde:
            # a stacked policy's log_std [K, d] broadcasts over each seed's rows as [K, 1, d]
            return latent, DiagGaussian(out, self.log_std.unsqueeze(1) if self.n_stacked else self.log_std)
        # gSDE: the action noise is latent @ theta with theta ~ N(0, std^2), so given the state the
        # action is Gaussian with variance (latent^2) @ std^2 (latent detached, as in SB3's default).
        variance = latent.detach().pow(2) @ torch.exp(2 * self.log_std)
        return latent, DiagGaussian(out, 0.5 * torch.log(variance + 1e-6))

    def distribution(self, obs, action_masks: torch.Tensor | None = None) -> Distribution:
        return self._dist(self._features(obs), action_masks)

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

    def _value(self, features: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return run(self.vf_head, features[1] if self.shared else run(self.vf_body, features[1])).squeeze(-1)

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        return self._value(self._features(obs))

    def act(self, obs: torch.Tensor, deterministic: bool = False,
            action_masks: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``action_masks`` (bool [B, n] or [B, sum(nvec)]): False marks invalid actions."""
        return self._sample(self._features(obs), deterministic, action_masks)

    def _sample(self, features: tuple[torch.Tensor, torch.Tensor], deterministic: bool,
                action_masks: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        latent, dist = self._latent_dist(features, action_masks)
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
        self, obs: torch.Tensor, actions: torch.Tensor, action_masks: torch.Tensor | None = None, sequences=None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Log-probs, entropies and values of ``actions``; ``sequences`` is for LSTM policies (unused here)."""
        features = self._features(obs)
        dist = self._dist(features, action_masks)
        return dist.log_prob(actions), dist.entropy(), self._value(features)

    def to_env(self, actions: torch.Tensor) -> torch.Tensor:
        """Actions as the environment takes them: Box actions clipped to the space's bounds, and
        every non-Discrete action in the space's own shape ([..., *shape])."""
        if self.continuous:
            actions = torch.clamp(actions, self.action_low, self.action_high)
        if self.action_shape and tuple(self.action_space.shape) != self.action_shape:
            actions = actions.reshape(*actions.shape[:-1], *self.action_space.shape)
        return actions
