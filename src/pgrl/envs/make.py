"""make_env: an environment id (or instance) to a VecEnv that speaks torch tensors."""

from __future__ import annotations

import difflib
from typing import Literal

import gymnasium as gym
import torch

from pgrl.envs.base import VecEnv
from pgrl.envs.gym_adapter import GymVecEnv
from pgrl.errors import EnvError

Backend = Literal["auto", "native", "gymnasium"]


def _native_envs() -> dict[str, type]:
    try:
        from pgrl.envs.native import NATIVE_ENVS
    except ImportError:  # native package not built yet in a partial install
        return {}
    return NATIVE_ENVS


def check_env_id(env_id: str) -> None:
    """Raise EnvError naming the id (and the closest registered ones) if Gymnasium does not know it."""
    if env_id in gym.registry:
        return
    close = difflib.get_close_matches(env_id, list(gym.registry), n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else "; see gymnasium.pprint_registry() for the ids"
    raise EnvError(f"unknown environment id '{env_id}'{hint}")


def _install_hint(env_id: str) -> str:
    """Which pgrl extra brings an env's dependencies, from its Gymnasium entry point."""
    entry_point = str(getattr(gym.registry.get(env_id), "entry_point", ""))
    for family, extra in (("mujoco", "mujoco"), ("box2d", "box2d")):
        if f"envs.{family}" in entry_point:
            return f"install it with pip install 'pgrl[{extra}]'"
    return "install the package the message names"


def _gym_factory(env_id: str, kwargs: dict):
    def make() -> gym.Env:
        return gym.make(env_id, **kwargs)

    return make


def make_env(
    env_id: str,
    num_envs: int = 1,
    seed: int | None = None,
    backend: Backend = "auto",
    vectorization: Literal["sync", "async"] = "sync",
    device: torch.device | str = "cpu",
    env_kwargs: dict | None = None,
) -> VecEnv:
    """Create ``num_envs`` copies of ``env_id`` as a tensor VecEnv and reset them with ``seed``.

    backend "auto" picks pgrl's native batched implementation when there is one for the id (and no
    env_kwargs are given), otherwise Gymnasium's vector env (``vectorization`` "sync" or "async").
    Copy i of seed s is seeded with s + i; pgrl's algorithms pass s = run_seed * 1000.
    """
    if num_envs < 1:
        raise EnvError(f"num_envs must be at least 1, got {num_envs}")
    if backend not in ("auto", "native", "gymnasium"):
        raise EnvError(f"unknown env backend '{backend}'; use auto, native or gymnasium")
    if vectorization not in ("sync", "async"):
        raise EnvError(f"unknown vectorization '{vectorization}'; use sync or async")
    check_env_id(env_id)
    native = _native_envs()
    use_native = backend == "native" or (backend == "auto" and env_id in native and not env_kwargs)
    if use_native:
        if env_id not in native:
            known = ", ".join(sorted(native)) or "none"
            raise EnvError(
                f"pgrl has no native implementation of {env_id} (it has: {known}); use backend 'gymnasium'"
            )
        from pgrl.envs.native import make_native

        env = make_native(env_id, num_envs, device=device)
    else:
        try:
            fns = [_gym_factory(env_id, dict(env_kwargs or {})) for _ in range(num_envs)]
            env = GymVecEnv(fns, env_id, vectorization, device=device)
        except (gym.error.DependencyNotInstalled, ImportError) as exc:
            raise EnvError(f"{env_id} needs an optional dependency ({exc}); {_install_hint(env_id)}") from None
    env.reset(seed=seed)
    return env
