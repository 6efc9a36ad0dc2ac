"""The small shape every pgrl algorithm shares: ``Algorithm(policy, env, **hparams)``, ``learn``, ``predict``,
``save`` and ``load`` with Stable-Baselines3's names.  A subclass declares its config model, its capabilities, whether
it learns from fixed-length rollouts or whole episodes, and its ``update``.  The loop lives in pgrl.loops (the
runners), the env and collector of a run in pgrl.loops.collection, the shared math in pgrl.algos.common.
"""

from __future__ import annotations

import abc
import json
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
from torch import nn

from pgrl import checkpoint
from pgrl.algos import common
from pgrl.algos.common import Capabilities, Metrics
from pgrl.config import POLICIES, AlgoConfig, build_config, load_preset, make_schedule, merge_preset
from pgrl.envs.make import env_name
from pgrl.envs.normalize import make_obs_normalizer
from pgrl.errors import ConfigError
from pgrl.policies.actor_critic import check_spaces


class Algorithm(abc.ABC):
    """The base of every pgrl algorithm (SB3's shape); ``Algorithm.load(path)`` loads a model of any algorithm."""
    name: ClassVar[str]
    config_class: ClassVar[type[AlgoConfig]]
    rollout_mode: ClassVar[Literal["steps", "episodes"]] = "steps"
    capabilities: ClassVar[Capabilities] = Capabilities()
    registry: ClassVar[dict[str, type[Algorithm]]] = {}  # every algorithm by name, filled on definition

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:
            Algorithm.registry[cls.name] = cls

    def __init__(self, policy: str | None = None, env: Any = "CartPole-v1", *, seed: int = 0,
                 device: str | torch.device = "auto", env_backend: str = "auto", vectorization: str = "sync",
                 preset: str = "default", env_kwargs: dict | None = None, verbose: int = 0, **hparams: Any):
        """``policy``: "MlpPolicy", "CnnPolicy", "MultiInputPolicy" or their Lstm variants (None: the preset's).
        ``env``: a registered id (with its preset), a gym.Env, a Gymnasium VectorEnv, a callable
        returning a gym.Env, or a pgrl VecEnv (see pgrl.envs.make.to_vec_env)."""
        from pgrl.loops.collection import env_argument, make_algo_env

        kind, hparams = env_argument(env, hparams)
        self._configure(policy, env_name(env), seed, device, env_backend, vectorization, preset, env_kwargs, verbose,
                        hparams, from_preset=kind == "id")
        self.env_source = env if kind in ("id", "factory") else None  # what more copies can be made from
        self.env = make_algo_env(self, env)
        self.env_id = self.env.env_id  # a factory's env is named once it exists
        self._build(self.env.single_observation_space, self.env.single_action_space)

    @classmethod
    def from_spaces(cls, observation_space, action_space, *, env_id: str, seed: int = 0,
                    device: str | torch.device = "auto", env_backend: str = "auto", vectorization: str = "sync",
                    preset: str = "default", env_kwargs: dict | None = None, **hparams: Any) -> Algorithm:
        """A model for these spaces without an env (checkpoint loading, Ray); one is made from
        ``env_id`` when training needs it."""
        self = cls.__new__(cls)
        self._configure(None, env_id, seed, device, env_backend, vectorization, preset, env_kwargs, 0,
                        hparams, from_preset=True)
        self.env, self.env_source = None, env_id
        self._build(observation_space, action_space)
        return self

    def _configure(self, policy, env_id, seed, device, env_backend, vectorization, preset, env_kwargs, verbose,
                   hparams, from_preset: bool) -> None:
        if policy is not None:
            if not isinstance(policy, str):
                raise ConfigError(f"policy must be one of {', '.join(POLICIES)}, not {policy!r}; use policy_kwargs")
            hparams = {**hparams, "policy": policy}
        self.env_id = env_id
        values = merge_preset(load_preset(self.name, env_id, preset) if from_preset else {}, hparams)
        self.config = build_config(self.config_class, self.name, values)
        self.seed, self.verbose = int(seed), verbose
        self.device = common.resolve_device(device)
        if self.device.type not in self.capabilities.devices:
            raise ConfigError(f"{self.name} runs on {' or '.join(self.capabilities.devices)}, not {self.device}; "
                              f"use --device {self.capabilities.devices[0]}")
        self.env_backend, self.vectorization, self.env_kwargs = env_backend, vectorization, env_kwargs
        self.num_timesteps, self.num_episodes, self.train_seconds = 0, 0, 0.0
        self._collector = None
        torch.manual_seed(self.seed)

    def _build(self, observation_space, action_space) -> None:
        check_spaces(observation_space, action_space, self.name)
        self.observation_space, self.action_space = observation_space, action_space
        self.policy = common.build_policy(self, observation_space, action_space)
        self.policy.to(self.device)
        self.obs_normalizer = make_obs_normalizer(observation_space, self.config, self.device)
        self.lr_schedule = make_schedule(self.config.learning_rate)
        self._setup()

    @abc.abstractmethod
    def _setup(self) -> None:
        """Create optimizers and any algorithm state."""

    def make_optimizer(self, params, lr: float, kind: str | None = None) -> torch.optim.Optimizer:
        return common.make_optimizer(params, lr, kind or self.config.optimizer)

    # -- training -----------------------------------------------------------------------------
    def rollout_steps(self) -> int:
        """Steps of every env per rollout in "steps" mode."""
        return self.config.n_steps

    # The env and collector of a run live in pgrl.loops.collection; these are the facade's names.
    def collector(self):
        from pgrl.loops import collection

        return collection.collector_for(self)

    def collect(self):
        from pgrl.loops import collection

        return collection.collect(self)

    def get_env(self):
        """The pgrl VecEnv this model trains on (None for a model loaded without an env)."""
        return self.env  # a pgrl VecEnv

    def set_env(self, env) -> None:
        """Train on ``env`` from now on (any env argument; its spaces must be this model's)."""
        from pgrl.loops import collection

        collection.set_env(self, env)

    @abc.abstractmethod
    def update(self, rollout, progress_remaining: float) -> Metrics:
        """Learn from one rollout; return metrics ("loss/policy", ...)."""

    def learn(self, total_timesteps: int | None = None, *, progress_bar: bool = False,
              log_dir: str | Path | None = None, callback=None, checkpointer=None,
              resume_state: dict[str, Any] | None = None, reset_num_timesteps: bool = True) -> Algorithm:
        """Train for ``total_timesteps`` env steps (default: the preset's n_timesteps) with the runner of
        ``capabilities.runner``.  ``checkpointer``: a pgrl.checkpoint.Checkpointer; ``resume_state``: what
        pgrl.checkpoint.load_checkpoint returned (the budget then counts from the resumed run's start).
        ``reset_num_timesteps`` (SB3's): count from 0 again, not from the last ``learn``'s end (episodes go on)."""
        from pgrl.loops import run

        if reset_num_timesteps and resume_state is None:
            self.num_timesteps = self.num_episodes = 0
        run(self, self.budget(total_timesteps), log_dir=log_dir, progress_bar=progress_bar, callback=callback,
            checkpointer=checkpointer, resume_state=resume_state)
        return self

    def budget(self, total_timesteps: int | None) -> int:
        """The env steps to train: ``total_timesteps``, else the preset's n_timesteps (ConfigError if neither)."""
        return common.training_budget(self.name, total_timesteps, self.config.n_timesteps)

    # -- inference ----------------------------------------------------------------------------
    def normalize_obs(self, obs: torch.Tensor) -> torch.Tensor:
        return self.obs_normalizer(obs) if self.obs_normalizer is not None else obs

    @torch.no_grad()
    def predict(self, observation, state=None, episode_start=None, deterministic: bool = True, action_masks=None):
        """SB3's ``(actions, state)`` for one observation or a batch (pgrl.algos.common.predict); action_masks: bool."""
        return common.predict(self, observation, state, episode_start, deterministic, action_masks)

    # -- persistence --------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the model as one safetensors file, its config and spaces in the header (".safetensors" added)."""
        return checkpoint.save_model(self, Path(path))

    @classmethod
    def load(cls, path: str | Path, env: Any = None, device: str = "auto", **overrides):
        """The model saved at ``path`` (a model file or a checkpoint), with ``env`` to train on and ``overrides``."""
        return checkpoint.load_model(cls, Path(path), env=env, device=device, overrides=overrides)

    def get_parameters(self) -> dict[str, dict[str, Any]]:
        """State dicts by name: "policy", "obs_normalizer", "optimizer.<attribute>" (SB3's shape)."""
        return checkpoint.get_parameters(self)

    def set_parameters(self, load_path_or_dict, exact_match: bool = True, device: str = "auto") -> None:
        """Load ``get_parameters()``'s dict, or the tensors of a saved model file, into this model."""
        checkpoint.set_parameters(self, load_path_or_dict, exact_match)

    def tensors(self) -> dict[str, nn.Module]:
        """Modules whose state is saved with the model."""
        extra = {"obs_normalizer": self.obs_normalizer} if self.obs_normalizer is not None else {}
        return {"policy": self.policy, **extra}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """Optimizers whose state goes into training checkpoints, by attribute name."""
        return {name: value for name, value in vars(self).items() if isinstance(value, torch.optim.Optimizer)}

    def training_state(self) -> dict[str, Any]:  # JSON-able state beyond modules and optimizers (PPO: kl_coef)
        return {}

    def load_training_state(self, state: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
        return None  # the inverse of training_state

    def describe(self) -> dict[str, Any]:
        return {"algo": self.name, "env_id": self.env_id, "config": self.config.to_json(), "seed": self.seed}

    def __repr__(self) -> str:
        config = json.dumps(self.config.to_json())
        return f"{type(self).__name__}(env={self.env_id!r}, seed={self.seed}, config={config})"
