"""The public algorithm shape shared by every pgrl algorithm.

``Algorithm(policy, env, **hparams)``, ``learn``, ``predict``, ``save`` and ``load`` with
Stable-Baselines3's names.  A subclass declares its config model, whether it learns from
fixed-length rollouts or whole episodes, and its ``update``; the loop lives in the trainer.
The helpers below (batched values, minibatches, optimizer steps) are shared through functions.
"""

from __future__ import annotations

import abc
import json
from pathlib import Path
from typing import Any, ClassVar, Literal

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from pgrl.algos.common import Metrics, make_optimizer
from pgrl.config import AlgoConfig, build_config, load_preset, make_schedule, merge
from pgrl.envs.base import VecEnv
from pgrl.envs.make import check_env_id, make_env
from pgrl.envs.normalize import ObsNormalizer, RewardScaler
from pgrl.errors import ConfigError, EnvError
from pgrl.policies.actor_critic import ActorCriticPolicy, check_spaces
from pgrl.rollout.collector import Collector
from pgrl.rollout.storage import Rollout


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


class Algorithm(abc.ABC):
    name: ClassVar[str]
    config_class: ClassVar[type[AlgoConfig]]
    rollout_mode: ClassVar[Literal["steps", "episodes"]] = "steps"

    def __init__(
        self,
        policy: str = "MlpPolicy",
        env: str | VecEnv = "CartPole-v1",
        *,
        seed: int = 0,
        device: str | torch.device = "auto",
        env_backend: str = "auto",
        vectorization: str = "sync",
        preset: str = "default",
        env_kwargs: dict | None = None,
        verbose: int = 0,
        _build_env: bool = True,
        **hparams: Any,
    ):
        if policy != "MlpPolicy":
            raise ConfigError(f"policy '{policy}' is not available; pgrl's policy is 'MlpPolicy'")
        if isinstance(env, str):
            check_env_id(env)
            self.env_id = env
        elif isinstance(env, VecEnv):
            self.env_id = env.env_id
        else:
            raise EnvError(f"env must be a Gymnasium id or a pgrl VecEnv, not {type(env).__name__}; try make_env()")
        values = merge(load_preset(self.name, self.env_id, preset) if isinstance(env, str) else {}, hparams)
        self.config = build_config(self.config_class, self.name, values)
        self.seed, self.verbose = int(seed), verbose
        self.device = resolve_device(device)
        self.env_backend, self.vectorization, self.env_kwargs = env_backend, vectorization, env_kwargs
        self.num_timesteps = 0
        self.env: VecEnv | None = None
        torch.manual_seed(self.seed)
        if isinstance(env, VecEnv):
            self.env = env
        elif _build_env:
            self.env = self._make_env()
        if self.env is not None:
            obs_space, act_space = self.env.single_observation_space, self.env.single_action_space
            check_spaces(obs_space, act_space, self.name)
            self._build(obs_space, act_space)
        self._collector: Collector | None = None
        self.num_episodes, self.train_seconds = 0, 0.0

    # -- construction -------------------------------------------------------------------------
    def _make_env(self) -> VecEnv:
        return make_env(
            self.env_id,
            self.config.n_envs,
            seed=None,
            backend=self.env_backend,
            vectorization=self.vectorization,
            device=self.device,
            env_kwargs=self.env_kwargs,
        )

    def _build(self, observation_space: gym.Space, action_space: gym.Space) -> None:
        self.observation_space, self.action_space = observation_space, action_space
        self.policy = ActorCriticPolicy(observation_space, action_space, **self.config.policy_kwargs.model_dump())
        self.policy.to(self.device)
        self.obs_normalizer = (
            ObsNormalizer(tuple(observation_space.shape), clip=self.config.clip_obs).to(self.device)
            if self.config.normalize
            else None
        )
        self.lr_schedule = make_schedule(self.config.learning_rate)
        self._setup()

    @abc.abstractmethod
    def _setup(self) -> None:
        """Create optimizers and any algorithm state."""

    def make_optimizer(self, params, lr: float, kind: str | None = None) -> torch.optim.Optimizer:
        return make_optimizer(params, lr, kind or self.config.optimizer)

    # -- training -----------------------------------------------------------------------------
    @property
    def steps_per_rollout(self) -> int | None:
        """Env steps each iteration adds (None for episode mode, where it varies)."""
        return getattr(self.config, "n_steps", 1) * self.config.n_envs if self.rollout_mode == "steps" else None

    def collector(self) -> Collector:
        if self._collector is None:
            if self.env is None:
                self.env = self._make_env()
            clip_reward = self.config.clip_reward
            scaler = (
                RewardScaler(self.env.num_envs, self.config.gamma, clip=clip_reward or 10.0).to(self.device)
                if self.config.normalize_reward
                else None
            )
            self._collector = Collector(
                self.env,
                self.policy,
                self.obs_normalizer,
                scaler,
                sde_sample_freq=self.config.sde_sample_freq,
                clip_reward=clip_reward,
            )
            self._collector.reset(seed=self.seed * 1000)
        return self._collector

    def use_collector(self, collector) -> None:
        """Collect through ``collector`` (Collector's interface, e.g. pgrl.distributed's RayCollector);
        None goes back to a local Collector on ``self.env``."""
        self._collector = collector

    def collect(self) -> Rollout:
        collector = self.collector()
        if self.rollout_mode == "episodes":
            return collector.collect_episodes(self.env.max_episode_steps or 10_000)
        return collector.collect(getattr(self.config, "n_steps", 1))

    @abc.abstractmethod
    def update(self, rollout: Rollout, progress_remaining: float) -> Metrics:
        """Learn from one rollout; return metrics ("loss/policy", ...)."""

    def learn(
        self,
        total_timesteps: int | None = None,
        *,
        progress_bar: bool = False,
        log_dir: str | Path | None = None,
        callback=None,
        checkpointer=None,
        resume_state: dict[str, Any] | None = None,
    ) -> Algorithm:
        """Train for ``total_timesteps`` env steps (default: the preset's n_timesteps).

        ``checkpointer`` (a ``pgrl.checkpoint.Checkpointer``) writes training checkpoints;
        ``resume_state`` is what ``pgrl.checkpoint.load_checkpoint`` returned, to continue a run
        (``total_timesteps`` then counts from the resumed run's start).
        """
        from pgrl.trainer import Trainer

        total = self.budget(total_timesteps)
        Trainer(
            self,
            log_dir=log_dir,
            progress_bar=progress_bar,
            callback=callback,
            checkpointer=checkpointer,
            resume_state=resume_state,
        ).run(total)
        return self

    def budget(self, total_timesteps: int | None) -> int:
        """The env steps to train: ``total_timesteps``, else the preset's n_timesteps (ConfigError if neither)."""
        total = total_timesteps if total_timesteps is not None else self.config.n_timesteps
        if total is None:
            raise ConfigError(f"{self.name} needs total_timesteps: this preset sets no n_timesteps")
        if int(total) <= 0:
            raise ConfigError(f"total_timesteps must be positive, got {total}")
        return int(total)

    # -- inference ----------------------------------------------------------------------------
    def normalize_obs(self, obs: torch.Tensor) -> torch.Tensor:
        return self.obs_normalizer(obs) if self.obs_normalizer is not None else obs

    @torch.no_grad()
    def predict(self, observation, state=None, episode_start=None, deterministic: bool = True):
        """Actions for one observation or a batch, as numpy (SB3's ``(actions, state)`` pair)."""
        obs = torch.as_tensor(np.asarray(observation), dtype=torch.float32, device=self.device)
        obs_shape = tuple(self.observation_space.shape or ())
        single = obs.shape == obs_shape
        if single:
            obs = obs.unsqueeze(0)
        if tuple(obs.shape[1:]) != obs_shape:
            raise EnvError(
                f"predict got observations of shape {tuple(obs.shape)}; expected {obs_shape} or [B, *{obs_shape}]"
            )
        actions, _ = self.policy.act(self.normalize_obs(obs), deterministic=deterministic)
        actions = self.policy.to_env(actions).cpu().numpy()
        return (actions[0] if single else actions), None

    # -- persistence --------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        from pgrl.checkpoint import save_model

        return save_model(self, Path(path))

    @classmethod
    def load(cls, path: str | Path, env: str | VecEnv | None = None, device: str = "auto", **overrides):
        from pgrl.checkpoint import load_model

        return load_model(cls, Path(path), env=env, device=device, overrides=overrides)

    def tensors(self) -> dict[str, nn.Module]:
        """Modules whose state is saved with the model."""
        modules: dict[str, nn.Module] = {"policy": self.policy}
        if self.obs_normalizer is not None:
            modules["obs_normalizer"] = self.obs_normalizer
        return modules

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """Optimizers whose state goes into training checkpoints, by attribute name."""
        return {name: value for name, value in vars(self).items() if isinstance(value, torch.optim.Optimizer)}

    def training_state(self) -> dict[str, Any]:
        """JSON-able state beyond modules and optimizers that training needs to go on exactly.

        Subclasses add their own (PPO: the adaptive ``kl_coef``) to ``super().training_state()``.
        """
        collector = self._collector
        return {"env_restorable": collector is not None and collector.env_state() is not None}

    def extra_state_tensors(self) -> dict[str, torch.Tensor]:
        """Tensors of the rollout side: collector obs and episode sums, reward scaler, native env state."""
        return self._collector.state_tensors() if self._collector is not None else {}

    def load_training_state(self, state: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
        """Inverse of ``training_state`` and ``extra_state_tensors`` (creates the env if needed)."""
        collector = self.collector()
        if not collector.load_state_tensors(tensors):
            # A Gymnasium env cannot be put back mid-episode: start fresh episodes from a seed
            # that depends on the step, so a resumed run does not replay its first episodes.
            collector.reset(seed=self.seed * 1000 + self.num_timesteps)

    def describe(self) -> dict[str, Any]:
        return {"algo": self.name, "env_id": self.env_id, "config": self.config.to_json(), "seed": self.seed}

    def __repr__(self) -> str:
        config = json.dumps(self.config.to_json())
        return f"{type(self).__name__}(env={self.env_id!r}, seed={self.seed}, config={config})"
