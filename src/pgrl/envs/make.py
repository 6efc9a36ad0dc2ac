"""Every kind of environment a user has, as one VecEnv that speaks torch tensors.

``to_vec_env`` takes a registered id (pgrl's native batched env when it has one), a pgrl VecEnv,
a ``gym.Env`` instance (one copy, its wrappers kept), a Gymnasium ``VectorEnv`` (sync, async or
an env's own vectorized class; any autoreset mode, see pgrl.envs.gym_adapter) or a callable
returning a ``gym.Env`` (``num_envs`` copies).  ``make_vec_env`` is Stable-Baselines3's helper.

Atari ids (ale-py's, registered on first use) are made preprocessed, as rl-zoo trains them: each
copy comes from ``pgrl.envs.atari.AtariFactory`` (84x84 grayscale, 4 frames stacked, a lost life
ends an episode, ``info["game_over"]`` marks the end of the game).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any, Literal

import gymnasium as gym
import torch

from pgrl.envs.atari import INSTALL_HINT as ATARI_INSTALL_HINT
from pgrl.envs.atari import AtariFactory, is_image_atari, looks_like_atari_id, register_atari_envs
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
    """Raise EnvError naming the id (and the closest registered ones) if Gymnasium does not know it.

    ale-py's Atari ids are registered here on first use (importing ale_py), when it is installed."""
    if env_id in gym.registry or (register_atari_envs() and env_id in gym.registry):
        return
    if looks_like_atari_id(env_id) and not register_atari_envs():
        raise EnvError(f"{env_id} is an Atari game, which needs ale-py; {ATARI_INSTALL_HINT}")
    close = difflib.get_close_matches(env_id, list(gym.registry), n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else "; see gymnasium.pprint_registry() for the ids"
    raise EnvError(f"unknown environment id '{env_id}'{hint}")


def _install_hint(env_id: str) -> str:
    """Which pgrl extra brings an env's dependencies, from its Gymnasium entry point."""
    entry_point = str(getattr(gym.registry.get(env_id), "entry_point", ""))
    for family, extra in (("mujoco", "mujoco"), ("box2d", "box2d")):
        if f"envs.{family}" in entry_point:
            return f"install it with pip install 'pgrl[{extra}]'"
    if entry_point.startswith("ale_py") or looks_like_atari_id(env_id):
        return ATARI_INSTALL_HINT
    return "install the package the message names"


def _gym_factory(env_id: str, kwargs: dict):
    if is_image_atari(env_id, kwargs):
        return AtariFactory(env_id, kwargs)  # preprocessed; obs_type="ram" ids stay plain envs

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
    An Atari id's copies are ``AtariFactory(env_id, env_kwargs)`` (training wrappers: episodic life,
    fire reset).  Copy i of seed s is seeded with s + i; pgrl's algorithms pass s = run_seed * 1000.
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
            factory = _gym_factory(env_id, dict(env_kwargs or {}))
            env = GymVecEnv([factory] * num_envs, env_id, vectorization, device=device)
        except (gym.error.DependencyNotInstalled, ImportError) as exc:
            raise EnvError(f"{env_id} needs an optional dependency ({exc}); {_install_hint(env_id)}") from None
    env.reset(seed=seed)
    return env


EnvLike = str | VecEnv | gym.Env | gym.vector.VectorEnv | Callable[[], gym.Env]


def env_name(env: Any) -> str:
    """The id an env goes by in configs, run folders and saved models: its spec's id, else its class."""
    if isinstance(env, str):
        return env
    if isinstance(env, VecEnv | EnvFactory | AtariFactory):
        return env.env_id
    spec = getattr(env, "spec", None)
    if spec is not None and getattr(spec, "id", None):
        return spec.id
    if isinstance(env, gym.vector.SyncVectorEnv):
        return env_name(env.envs[0])
    if isinstance(env, gym.vector.AsyncVectorEnv):
        spec = env.get_attr("spec")[0]
        return spec.id if spec is not None else type(env).__name__
    if isinstance(env, gym.Env):
        return type(env.unwrapped).__name__
    return type(env).__name__ if not callable(env) else getattr(env, "__name__", type(env).__name__)


def describe_env_kind(env: Any) -> str | None:
    """What kind of env argument this is ("id", "vec", "instance", "vector", "factory"), None if none."""
    if isinstance(env, str):
        return "id"
    if isinstance(env, VecEnv):
        return "vec"
    if isinstance(env, gym.vector.VectorEnv):
        return "vector"
    if isinstance(env, gym.Env):
        return "instance"
    if callable(env):
        return "factory"
    return None


def to_vec_env(
    env: EnvLike,
    num_envs: int = 1,
    seed: int | None = None,
    backend: Backend = "auto",
    vectorization: Literal["sync", "async"] = "sync",
    device: torch.device | str = "cpu",
    env_kwargs: dict | None = None,
) -> VecEnv:
    """Any env argument as a VecEnv (see the module docstring); ``num_envs`` applies to ids and factories."""
    kind = describe_env_kind(env)
    if kind == "id":
        return make_env(env, num_envs, seed=seed, backend=backend, vectorization=vectorization, device=device,
                        env_kwargs=env_kwargs)
    if kind == "vec":
        return env
    if kind is None:
        raise EnvError(
            f"env must be a Gymnasium id, a gymnasium.Env, a gymnasium VectorEnv, a callable returning a "
            f"gymnasium.Env or a pgrl VecEnv, not {type(env).__name__}"
        )
    if kind == "vector":
        vec = GymVecEnv(env, env_name(env), device=device)
    elif kind == "instance":
        vec = GymVecEnv([lambda: env], env_name(env), "sync", device=device)
    else:
        factory = _checked_factory(env)
        vec = GymVecEnv([factory] * num_envs, env_name(env), vectorization, device=device)
        if isinstance(vec.vec, gym.vector.SyncVectorEnv):
            vec.env_id = env_name(vec.vec.envs[0])
    if seed is not None:
        vec.reset(seed=seed)
    return vec


def _checked_factory(factory: Callable[[], gym.Env]) -> Callable[[], gym.Env]:
    def make() -> gym.Env:
        made = factory()
        if not isinstance(made, gym.Env):
            raise EnvError(f"the env factory {env_name(factory)} returned {type(made).__name__}, not a gymnasium.Env")
        return made

    return make


def make_vec_env(
    env_id: str | Callable[..., gym.Env],
    n_envs: int = 1,
    seed: int | None = None,
    wrapper_class: Callable[[gym.Env], gym.Env] | None = None,
    env_kwargs: dict | None = None,
    vec_env_cls: str | type | None = None,
    device: torch.device | str = "cpu",
) -> VecEnv:
    """``n_envs`` copies of an id or of ``env_id(**env_kwargs)``, each wrapped with ``wrapper_class``.

    Stable-Baselines3's signature; ``vec_env_cls`` is "sync" / "async" or Gymnasium's
    ``SyncVectorEnv`` / ``AsyncVectorEnv``.  A plain registered id with no wrapper gets pgrl's
    native batched env where there is one (as ``make_env``).  Copy i is seeded with seed + i.
    """
    vectorization = {None: "sync", "sync": "sync", "async": "async", gym.vector.SyncVectorEnv: "sync",
                     gym.vector.AsyncVectorEnv: "async"}.get(vec_env_cls)
    if vectorization is None:
        raise EnvError(f"vec_env_cls must be 'sync', 'async', SyncVectorEnv or AsyncVectorEnv, not {vec_env_cls!r}")
    kwargs = dict(env_kwargs or {})
    if isinstance(env_id, str) and wrapper_class is None:
        return make_env(env_id, n_envs, seed=seed, vectorization=vectorization, device=device, env_kwargs=kwargs)
    if isinstance(env_id, str):
        check_env_id(env_id)
    if not isinstance(env_id, str) and not callable(env_id):
        raise EnvError(
            f"make_vec_env takes an env id or a callable returning a gymnasium.Env, not {type(env_id).__name__}"
        )

    def make() -> gym.Env:
        env = gym.make(env_id, **kwargs) if isinstance(env_id, str) else env_id(**kwargs)
        return wrapper_class(env) if wrapper_class is not None else env

    make.__name__ = env_name(env_id) if isinstance(env_id, str) else getattr(env_id, "__name__", "env")
    return to_vec_env(make, n_envs, seed=seed, vectorization=vectorization, device=device)


# -- env options of the command line (--env-kwargs, --env-wrapper, --gym-package) ---------------


def import_gym_packages(modules: list[str] | tuple[str, ...]) -> None:
    """Import modules that register envs with Gymnasium (rl-zoo's ``--gym-packages``)."""
    import importlib

    for module in modules:
        try:
            importlib.import_module(module)
        except Exception as exc:  # ImportError, or the module's own error while registering
            raise EnvError(f"--gym-package {module} could not be imported ({type(exc).__name__}: {exc}); "
                           "check the module name and that it is installed") from None


def import_wrapper(path: str) -> Callable[[gym.Env], gym.Env]:
    """The class (or callable) named by "module:Name" that wraps one gym.Env."""
    import importlib

    module, sep, name = path.partition(":")
    if not sep or not module or not name:
        raise EnvError(f"--env-wrapper takes module:Class (e.g. gymnasium.wrappers:FlattenObservation), got '{path}'")
    try:
        wrapper = getattr(importlib.import_module(module), name)
    except Exception as exc:
        raise EnvError(f"--env-wrapper {path} could not be imported ({type(exc).__name__}: {exc})") from None
    if not callable(wrapper):
        raise EnvError(f"--env-wrapper {path} is a {type(wrapper).__name__}, not a wrapper class")
    return wrapper


class EnvFactory:
    """``gym.make(env_id, **env_kwargs)`` wrapped in ``wrappers`` ("module:Class", innermost first).

    A plain picklable object (not a closure), so worker processes and Ray actors can make the
    env; ``env_id`` keeps the id's presets and names the run.  An Atari id is made preprocessed
    (``AtariFactory(env_id, env_kwargs)``, as ``make_env`` makes it) before the wrappers.
    """

    def __init__(self, env_id: str, env_kwargs: dict | None = None, wrappers: tuple[str, ...] = ()):
        check_env_id(env_id)
        self.env_id, self.env_kwargs, self.wrappers = env_id, dict(env_kwargs or {}), tuple(wrappers)
        self._classes = [import_wrapper(path) for path in self.wrappers]  # fail now, not in a worker

    def __call__(self) -> gym.Env:
        env = _gym_factory(self.env_id, self.env_kwargs)()
        for wrapper in self._classes:
            env = wrapper(env)
        return env

    def __getstate__(self) -> dict:
        return {"env_id": self.env_id, "env_kwargs": self.env_kwargs, "wrappers": self.wrappers}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["env_id"], state["env_kwargs"], tuple(state["wrappers"]))

    def __repr__(self) -> str:
        return f"EnvFactory({self.env_id!r}, {self.env_kwargs!r}, {self.wrappers!r})"
