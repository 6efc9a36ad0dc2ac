"""The rollout side of a run: an algorithm's env and collector, and their checkpoint state.

Kept out of the algorithm classes: an algorithm owns its policy, optimizers and update, while
where its data comes from (a local VecEnv, Ray actors) is decided by the runner that trains it.
A collector has Collector's interface (collect, collect_episodes, reset, metrics, state
tensors); pgrl.distributed's RayCollector is one.
"""

from __future__ import annotations

from typing import Any

import torch

from pgrl.envs.base import VecEnv
from pgrl.envs.make import EnvFactory, describe_env_kind, to_vec_env
from pgrl.envs.normalize import RewardScaler
from pgrl.errors import ConfigError, EnvError
from pgrl.fast import rollout_fast_path
from pgrl.rollout.collector import Collector
from pgrl.rollout.storage import Rollout


def env_argument(env, hparams: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The kind of an algorithm's env argument (pgrl.envs.make.describe_env_kind; "id" also for an
    EnvFactory, whose id's presets apply) and the hyperparameters with n_envs fixed to its copies
    when the env itself fixes them."""
    kind = describe_env_kind(env)
    if kind is None:
        raise EnvError(f"env must be a Gymnasium id, a gymnasium.Env, a gymnasium VectorEnv, a callable "
                       f"returning a gymnasium.Env or a pgrl VecEnv, not {type(env).__name__}")
    if kind in ("vec", "vector", "instance"):
        copies = 1 if kind == "instance" else env.num_envs
        if hparams.get("n_envs", copies) != copies:
            raise ConfigError(f"n_envs={hparams['n_envs']} but the given env has {copies} "
                              f"cop{'y' if copies == 1 else 'ies'}; "
                              "drop n_envs, or pass an env id or a factory to get n_envs copies")
        hparams = {**hparams, "n_envs": copies}
    return ("id" if isinstance(env, EnvFactory) else kind), hparams


def set_env(algo, env) -> None:
    """``algo`` trains on ``env`` from now on; EnvError when its spaces are not the model's."""
    kind, _ = env_argument(env, {})
    vec = make_algo_env(algo, env) if kind in ("id", "factory") else to_vec_env(env, device=algo.device)
    got = (vec.single_observation_space, vec.single_action_space)
    if got != (algo.observation_space, algo.action_space):
        raise EnvError(f"set_env got an env with spaces {got[0]} / {got[1]}, but this model was made for "
                       f"{algo.observation_space} / {algo.action_space}")
    algo.env, algo.env_source, algo._collector = vec, env if kind in ("id", "factory") else None, None


def make_algo_env(algo, env=None) -> VecEnv:
    """``env`` (default: what the model was made from, ``algo.env_source``) as a VecEnv of
    ``config.n_envs`` copies with the algorithm's backend, vectorization and kwargs."""
    source = env if env is not None else algo.env_source
    if source is None:
        raise EnvError(f"{algo.name} was made from an env instance that is gone; give it an env with set_env "
                       "or load it with env=...")
    return to_vec_env(source, algo.config.n_envs, seed=None, backend=algo.env_backend,
                      vectorization=algo.vectorization, device=algo.device, env_kwargs=algo.env_kwargs)


def collector_for(algo):
    """``algo``'s collector, made on first use: a Collector over ``algo.env`` (made if needed), its
    observation normalizer, a reward scaler when ``normalize_reward``, reset with seed * 1000."""
    if algo._collector is None:
        if algo.env is None:
            algo.env = make_algo_env(algo)
        c = algo.config
        scaler = (RewardScaler(algo.env.num_envs, c.gamma, clip=c.clip_reward or 10.0).to(algo.device)
                  if c.normalize_reward else None)
        algo._collector = Collector(algo.env, algo.policy, algo.obs_normalizer, scaler,
                                    sde_sample_freq=c.sde_sample_freq, clip_reward=c.clip_reward)
        algo._collector.reset(seed=algo.seed * 1000)
        algo._collector.fast = rollout_fast_path(algo, algo._collector)
    return algo._collector


def use_collector(algo, collector) -> None:
    """Collect through ``collector`` from now on (None: back to a local Collector on ``algo.env``)."""
    algo._collector = collector


def collect(algo, on_step=None) -> Rollout:
    """One rollout: ``rollout_steps()`` steps of every env, or one whole episode of each ("episodes" mode).

    ``on_step(step)`` (a callback's per-step hook; local collectors only) runs after every env
    step; False ends the rollout early with ``rollout.stopped`` set."""
    collector = collector_for(algo)
    hook = {"on_step": on_step} if on_step is not None else {}
    if algo.rollout_mode == "episodes":
        return collector.collect_episodes(algo.env.max_episode_steps or 10_000, **hook)
    return collector.collect(algo.rollout_steps(), **hook)


def rollout_steps_taken(algo, rollout: Rollout) -> int:
    """Env steps a rollout adds to the budget (valid steps only in "episodes" mode)."""
    return rollout.n_steps * rollout.num_envs if algo.rollout_mode == "steps" else int(rollout.valid.sum())


# -- checkpoints --------------------------------------------------------------------------------


def rollout_state(algo) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(JSON, tensors) of the rollout side for a checkpoint: the collector's obs, episode sums,
    reward scaler and native env state; nothing when no collector was made (hogwild runs)."""
    collector = algo._collector
    if collector is None:
        return {"env_restorable": False}, {}
    return {"env_restorable": collector.env_state() is not None}, collector.state_tensors()


def load_rollout_state(algo, tensors: dict[str, torch.Tensor]) -> None:
    """Inverse of ``rollout_state`` for runners that collect in this process."""
    if algo.capabilities.runner != "synchronous":
        return  # workers make their own envs and start fresh episodes
    collector = collector_for(algo)
    if not collector.load_state_tensors(tensors):
        # A Gymnasium env cannot be put back mid-episode: start fresh episodes from a seed
        # that depends on the step, so a resumed run does not replay its first episodes.
        collector.reset(seed=algo.seed * 1000 + algo.num_timesteps)
