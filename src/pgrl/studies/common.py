"""What both studies share: a policy frozen at fixed parameters, and argument checks.

A study measures estimators at *fixed* parameters, so nothing here may change the policy: the
observation normalizer (if the model has one) is wrapped so that collecting never updates it, and
every forward pass runs under ``torch.no_grad`` unless a gradient is asked for.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pgrl.envs.make import check_env_id
from pgrl.errors import ConfigError
from pgrl.policies.actor_critic import ActorCriticPolicy

TRAINABLE_ALGOS = ("reinforce", "vpg", "actor_critic", "a2c", "ppo", "trpo")


class FrozenNormalizer(nn.Module):
    """An ObsNormalizer whose statistics never change: ``update`` is ignored."""

    def __init__(self, normalizer: nn.Module):
        super().__init__()
        self.normalizer = normalizer

    def forward(self, obs: torch.Tensor, update: bool = False) -> torch.Tensor:
        return self.normalizer(obs, update=False)


@dataclass
class FixedPolicy:
    """The parameters a study holds fixed, and where they came from.

    policy: the actor-critic module (its critic is the trained one).
    obs_normalizer: frozen observation normalizer or None; policy inputs are normalizer(raw obs).
    reward_scale: factor the trained critic's rewards were scaled by (1.0 without reward scaling).
    gamma: discount of the trained configuration.
    source: one phrase for reports ("ppo trained 20,000 steps, seed 0" or "model of RUN_DIR").
    """

    env_id: str
    policy: ActorCriticPolicy
    obs_normalizer: FrozenNormalizer | None
    reward_scale: float
    gamma: float
    source: str
    train_seconds: float = 0.0

    def normalize(self, obs: torch.Tensor) -> torch.Tensor:
        return self.obs_normalizer(obs) if self.obs_normalizer is not None else obs


def policy_outputs(policy: ActorCriticPolicy, obs: torch.Tensor):
    """(distribution, values [B]) from one pass through a shared trunk (two for separate nets)."""
    features = policy._features(obs)
    return policy._dist(features), policy._value(features)


def _model_to_fixed(model: Any, source: str, train_seconds: float = 0.0) -> FixedPolicy:
    policy = model.policy
    policy.eval()
    for parameter in policy.parameters():
        parameter.requires_grad_(True)
    normalizer = FrozenNormalizer(model.obs_normalizer) if model.obs_normalizer is not None else None
    scale = 1.0
    collector = getattr(model, "_collector", None)
    scaler = getattr(collector, "reward_scaler", None) if collector is not None else None
    if scaler is not None:
        scale = float(1.0 / torch.sqrt(scaler.stats.var.float() + scaler.epsilon))
    return FixedPolicy(model.env_id, policy, normalizer, scale, float(model.config.gamma), source, train_seconds)


def train_fixed_policy(env_id: str, algo: str, train_steps: int, seed: int, hparams: dict | None = None) -> FixedPolicy:
    """Train ``algo``'s preset for ``train_steps`` env steps on CPU and freeze the result."""
    from pgrl.runs import algorithm_class

    check_env_id(env_id)
    if algo.lower().replace("-", "_") not in TRAINABLE_ALGOS:
        raise ConfigError(
            f"--algo '{algo}' cannot pre-train a study policy; choose one of: {', '.join(TRAINABLE_ALGOS)}"
        )
    check_positive("train_steps", train_steps)
    cls = algorithm_class(algo)
    model = cls("MlpPolicy", env_id, seed=seed, device="cpu", **(hparams or {}))
    start = time.perf_counter()
    model.learn(int(train_steps))
    seconds = time.perf_counter() - start
    return _model_to_fixed(model, f"{cls.name} trained for {int(train_steps):,} steps (seed {seed})", seconds)


def load_fixed_policy(run_dir: str | Path, env_id: str | None = None) -> FixedPolicy:
    """The model of a run folder (or model file), frozen; its env must be ``env_id`` when given."""
    from pgrl.runs import load_run_model

    model = load_run_model(run_dir, device="cpu")
    if env_id is not None and model.env_id != env_id:
        raise ConfigError(
            f"the model in {run_dir} was trained on {model.env_id}, not {env_id}; "
            f"pass ENV_ID {model.env_id} or another run folder"
        )
    if getattr(model.config, "normalize_reward", False):
        source = f"model of {run_dir} (its critic saw scaled rewards; the study fits its own)"
    else:
        source = f"model of {run_dir}"
    return _model_to_fixed(model, source)


def check_positive(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 1 or int(value) != value:
        raise ConfigError(f"{name} must be a positive whole number, got {value!r}")
    return int(value)


def horizon_for(gamma: float, tolerance: float = 1e-3, cap: int = 5000) -> int:
    """The smallest H with gamma**H <= tolerance (capped), the length a continuation is run."""
    if gamma <= 0.0:
        return 1
    if gamma >= 1.0:
        return cap
    return min(cap, max(1, math.ceil(math.log(tolerance) / math.log(gamma))))


def write_csv(path: Path, columns: list[str], rows: list[list]) -> Path:
    import csv

    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        writer.writerows(rows)
    return path


def fmt(value: float, digits: int = 4) -> float:
    """A float rounded to ``digits`` significant digits, for tables."""
    if value == 0 or not math.isfinite(value):
        return float(value)
    return float(f"{value:.{digits}g}")
