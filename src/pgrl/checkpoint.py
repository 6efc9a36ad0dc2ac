"""Saved models and training checkpoints: one safetensors file, tensors plus a JSON header; never pickle.

The JSON (stored in the safetensors metadata under "pgrl") holds the format version, the
algorithm, env id, config, observation and action spaces, and counters, so a model can be
loaded, checked and used without creating its environment.

A checkpoint (``RUN/checkpoints/ckpt_<step>.safetensors``) is a model file (same tensor names,
same header, so ``pgrl eval`` reads it) plus everything training needs to go on exactly:
optimizer states (``ckpt.optim.<name>.<param>.<key>``), the reward scaler, the torch RNG
(``ckpt.rng.torch``, a uint8 tensor), a native env's state, step counters and generator, the
collector's current observations and episode sums, and in the header the algorithm's extra
state (PPO's kl_coef), the optimizers' param groups, numpy's and python's RNG states (JSON),
counters, train_seconds and the trainer's place in its schedule.  Files are written to a
temporary name, fsynced and renamed, so the newest checkpoint is never half-written.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from pgrl.envs.base import VecEnv
from pgrl.errors import CheckpointError, ConfigError, EnvError
from pgrl.loops.collection import load_rollout_state, rollout_state

FORMAT_VERSION = 1
SUFFIX = ".safetensors"


def space_to_json(space: gym.Space) -> dict[str, Any]:
    if isinstance(space, gym.spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, gym.spaces.Box):
        return {
            "type": "Box",
            "low": space.low.tolist(),
            "high": space.high.tolist(),
            "shape": list(space.shape),
            "dtype": str(space.dtype),
        }
    if isinstance(space, gym.spaces.MultiDiscrete):
        return {"type": "MultiDiscrete", "nvec": space.nvec.tolist(), "start": space.start.tolist(),
                "dtype": str(space.dtype)}
    if isinstance(space, gym.spaces.MultiBinary):
        return {"type": "MultiBinary", "n": np.asarray(space.n).tolist()}
    if isinstance(space, gym.spaces.Dict):
        return {"type": "Dict", "spaces": [[key, space_to_json(sub)] for key, sub in space.spaces.items()]}
    raise CheckpointError(f"cannot save a model for the space {space}")


def space_from_json(data: dict[str, Any]) -> gym.Space:
    if not isinstance(data, dict):
        raise TypeError("a space is a JSON object")
    if data["type"] == "Discrete":
        return gym.spaces.Discrete(data["n"], start=data.get("start", 0))
    if data["type"] == "Box":
        dtype = np.dtype(data["dtype"])
        with np.errstate(over="ignore", invalid="ignore"):  # a damaged header: the comparison then fails
            low, high = np.asarray(data["low"], dtype=dtype), np.asarray(data["high"], dtype=dtype)
        return gym.spaces.Box(low, high, tuple(data["shape"]), dtype)
    if data["type"] == "MultiDiscrete":
        return gym.spaces.MultiDiscrete(np.asarray(data["nvec"]), dtype=np.dtype(data["dtype"]),
                                        start=np.asarray(data["start"]))
    if data["type"] == "MultiBinary":
        return gym.spaces.MultiBinary(data["n"])
    if data["type"] == "Dict":
        return gym.spaces.Dict({key: space_from_json(sub) for key, sub in data["spaces"]})
    raise CheckpointError(f"unknown space type {data['type']!r} in the saved model")


def model_path(path: Path) -> Path:
    return path if path.suffix == SUFFIX else path.with_name(path.name + SUFFIX)


def atomic_save(tensors: dict[str, torch.Tensor], metadata: dict[str, str], path: Path) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=metadata)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_model(algo, path: Path) -> Path:
    path = model_path(path)
    tensors = {
        f"{prefix}.{key}": value.detach().cpu().contiguous()
        for prefix, module in algo.tensors().items()
        for key, value in module.state_dict().items()
    }
    header = {
        "format_version": FORMAT_VERSION,
        **algo.describe(),
        "observation_space": space_to_json(algo.observation_space),
        "action_space": space_to_json(algo.action_space),
        "num_timesteps": algo.num_timesteps,
    }
    atomic_save(tensors, {"pgrl": json.dumps(header)}, path)
    return path


def read_model_file(path: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(header, tensors) of a saved model; CheckpointError with one sentence on any problem."""
    path = model_path(path) if not path.exists() else path
    if path.is_dir():
        candidate = path / f"model{SUFFIX}"
        if not candidate.exists():
            raise CheckpointError(
                f"{path} is a folder without model{SUFFIX}; pass the model file or a run folder"
            )
        path = candidate
    if not path.exists():
        raise CheckpointError(f"model file {path} does not exist; check the path")
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError, OverflowError, MemoryError) as exc:
        raise CheckpointError(f"{path} is not a readable pgrl model ({_first_line(exc)})") from None
    except BaseException as exc:  # safetensors' Rust panics derive from BaseException
        if type(exc).__name__ != "PanicException":
            raise
        raise CheckpointError(f"{path} is not a readable pgrl model ({_first_line(exc)})") from None
    if "pgrl" not in metadata:
        raise CheckpointError(f"{path} is a safetensors file but not a pgrl model (no 'pgrl' header)")
    try:
        header = json.loads(metadata["pgrl"])
        if not isinstance(header, dict):
            raise ValueError
    except ValueError:
        raise CheckpointError(f"{path} has a corrupt pgrl header; the file is damaged") from None
    if not isinstance(metadata["pgrl"], str):
        raise CheckpointError(f"{path} has a corrupt pgrl header; the file is damaged")
    version = header.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(f"{path} has model format {version!r}; this pgrl reads format {FORMAT_VERSION}")
    return header, tensors


def load_model(cls, path: Path, env=None, device: str = "auto", overrides: dict | None = None):
    """The model saved at ``path``, built for its saved spaces by ``cls.from_spaces``.

    ``cls`` is the class ``load`` was called on: its algorithm must match the file's, unless it
    is the base class, which loads whatever algorithm the file holds (from ``cls.registry``).
    """
    header, tensors = read_model_file(path)
    registry = cls.registry
    algo_name = header.get("algo")
    if not isinstance(algo_name, str) or algo_name not in registry:
        raise CheckpointError(f"{path} holds an unknown algorithm {algo_name!r}; the file is damaged or not pgrl's")
    if getattr(cls, "name", None) != algo_name:
        if hasattr(cls, "name"):
            raise CheckpointError(
                f"{path} holds a {algo_name} model, not {cls.name}; load it with {registry[algo_name].__name__}.load"
            )
        cls = registry[algo_name]
    try:
        observation_space = space_from_json(header["observation_space"])
        action_space = space_from_json(header["action_space"])
        config = dict(header["config"])
        env_id = header["env_id"]
        seed = int(header.get("seed", 0))
        num_timesteps = int(header.get("num_timesteps", 0))
        if not isinstance(env_id, str):
            raise TypeError
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError, MemoryError, AssertionError):
        raise CheckpointError(f"{path} has an incomplete pgrl header; the file is damaged") from None
    config.update(overrides or {})
    given_id = env if isinstance(env, str) else env.env_id if isinstance(env, VecEnv) else env_id
    try:
        algo = cls.from_spaces(observation_space, action_space, env_id=given_id, seed=seed, device=device, **config)
    except (ValueError, TypeError, OverflowError, RuntimeError) as exc:  # ConfigError, EnvError included
        if isinstance(exc, ConfigError | EnvError) and (overrides or env is not None):
            raise
        raise CheckpointError(f"{path} holds a config or spaces this pgrl cannot use: {_first_line(exc)}") from None
    if env is not None and not isinstance(env, str) or given_id != env_id:
        # the given env (any env argument) or another id: its spaces must be the saved ones
        from pgrl.loops.collection import set_env

        try:
            set_env(algo, env)
        except EnvError as exc:
            from pgrl.envs.make import env_name

            raise CheckpointError(f"{path} was trained on {env_id} with spaces {observation_space} / "
                                  f"{action_space}, but the given env {env_name(env)} does not fit: "
                                  f"{_first_line(exc)}") from None
    load_tensors(algo, tensors, path)
    algo.num_timesteps = num_timesteps
    algo.policy.eval()
    return algo


def load_tensors(algo, tensors: dict[str, torch.Tensor], path: Path, only: set[str] | None = None) -> None:
    for prefix, module in algo.tensors().items():
        if only is not None and prefix not in only:
            continue
        state = {
            key[len(prefix) + 1 :]: value for key, value in tensors.items() if key.startswith(prefix + ".")
        }
        expected = module.state_dict()
        for key, value in expected.items():
            if key not in state:
                raise CheckpointError(
                    f"{path} lacks {prefix}.{key}; it was saved with another network layout"
                )
            if state[key].shape != value.shape:
                raise CheckpointError(
                    f"{path} has {prefix}.{key} of shape {tuple(state[key].shape)} but this network needs "
                    f"{tuple(value.shape)}; check policy_kwargs.net_arch"
                )
            if state[key].dtype != value.dtype:
                raise CheckpointError(
                    f"{path} has {prefix}.{key} of dtype {state[key].dtype} but this network needs {value.dtype}; "
                    "the file is damaged"
                )
        extra = set(state) - set(expected)
        if extra:
            raise CheckpointError(f"{path} has unexpected tensors ({sorted(extra)[0]}, ...) for {prefix}")
        module.load_state_dict({k: v.to(algo.device) for k, v in state.items()})


def get_parameters(algo) -> dict[str, dict[str, Any]]:
    """Every module's and optimizer's state dict, by name (Algorithm.get_parameters)."""
    params: dict[str, dict[str, Any]] = {prefix: module.state_dict() for prefix, module in algo.tensors().items()}
    params.update({f"optimizer.{name}": opt.state_dict() for name, opt in algo.optimizers().items()})
    return params


def set_parameters(algo, source, exact_match: bool = True) -> None:
    """Load ``get_parameters``' dict or a model file's tensors into ``algo`` (Algorithm.set_parameters).

    With ``exact_match`` every module must be given whole; otherwise the ones given are loaded.
    """
    if isinstance(source, str | Path):
        path = Path(source)
        _, tensors = read_model_file(path)
        modules = {prefix: {k[len(prefix) + 1:]: v for k, v in tensors.items() if k.startswith(prefix + ".")}
                   for prefix in algo.tensors()}
        source = {prefix: state for prefix, state in modules.items() if state}
    if not isinstance(source, dict):
        raise CheckpointError(
            f"set_parameters takes a model file or get_parameters()'s dict, not {type(source).__name__}"
        )
    known = set(algo.tensors()) | {f"optimizer.{name}" for name in algo.optimizers()}
    unknown = set(source) - known
    if unknown:
        raise CheckpointError(f"set_parameters got {sorted(unknown)[0]!r}, which this model does not have; "
                              f"it has {', '.join(sorted(known))}")
    missing = set(algo.tensors()) - set(source)
    if exact_match and missing:
        raise CheckpointError(f"set_parameters lacks {sorted(missing)[0]!r}; pass it or use exact_match=False")
    modules = {prefix: module for prefix, module in algo.tensors().items() if prefix in source}
    flat = {f"{prefix}.{key}": value for prefix in modules for key, value in source[prefix].items()}
    load_tensors(algo, flat, Path("parameters"), only=set(modules))
    for name, optimizer in algo.optimizers().items():
        if f"optimizer.{name}" in source:
            optimizer.load_state_dict(source[f"optimizer.{name}"])


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:120]


# -- training checkpoints -----------------------------------------------------------------------

CHECKPOINT_DIR = "checkpoints"
CHECKPOINT_PREFIX = "ckpt_"
_PARSE_ERRORS = (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError, MemoryError,
                 AssertionError, RuntimeError)


def checkpoint_files(run_dir: Path) -> list[tuple[int, Path]]:
    """(step, path) of every checkpoint in ``run_dir/checkpoints``, oldest first."""
    folder = Path(run_dir) / CHECKPOINT_DIR
    found = []
    for path in folder.glob(f"{CHECKPOINT_PREFIX}*{SUFFIX}") if folder.is_dir() else []:
        digits = path.name[len(CHECKPOINT_PREFIX) : -len(SUFFIX)]
        if digits.isdigit():
            found.append((int(digits), path))
    return sorted(found)


def save_checkpoint(algo, path: Path, trainer_state: dict[str, Any]) -> Path:
    """Everything needed to continue training exactly, in one atomically written file."""
    import random

    tensors = {
        f"{prefix}.{key}": value.detach().cpu().contiguous()
        for prefix, module in algo.tensors().items()
        for key, value in module.state_dict().items()
    }
    optimizers = {}
    for name, optimizer in algo.optimizers().items():
        state = optimizer.state_dict()
        scalars: dict[str, dict[str, Any]] = {}
        for index, entry in state["state"].items():
            for key, value in entry.items():
                if isinstance(value, torch.Tensor):
                    tensors[f"ckpt.optim.{name}.{index}.{key}"] = value.detach().cpu().contiguous()
                else:
                    scalars.setdefault(str(index), {})[key] = value
        optimizers[name] = {"param_groups": _jsonable(state["param_groups"]), "scalars": scalars}
    rollout_json, rollout_tensors = rollout_state(algo)
    for key, value in rollout_tensors.items():
        tensors[f"ckpt.{key}"] = value.detach().cpu().contiguous()
    tensors["ckpt.rng.torch"] = torch.get_rng_state()
    if algo.device.type == "cuda":
        tensors["ckpt.rng.cuda"] = torch.cuda.get_rng_state(algo.device)
    np_state = np.random.get_state()
    header = {
        "format_version": FORMAT_VERSION,
        "kind": "checkpoint",
        **algo.describe(),
        "observation_space": space_to_json(algo.observation_space),
        "action_space": space_to_json(algo.action_space),
        "num_timesteps": algo.num_timesteps,
        "num_episodes": getattr(algo, "num_episodes", 0),
        "train_seconds": getattr(algo, "train_seconds", 0.0),
        "algo_state": _jsonable({**algo.training_state(), **rollout_json}),
        "optimizers": optimizers,
        "rng": {
            "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]],
            "python": _jsonable(random.getstate()),
        },
        "trainer": _jsonable(trainer_state),
    }
    atomic_save(tensors, {"pgrl": json.dumps(header)}, path)
    return path


def load_checkpoint(algo, path: Path) -> dict[str, Any]:
    """Restore ``algo`` (built for the same algorithm, spaces and network) from a checkpoint.

    Returns the trainer state saved with it.  Raises CheckpointError naming what mismatched.
    """
    import random

    path = Path(path)
    header, tensors = read_model_file(path)
    if header.get("kind") != "checkpoint":
        raise CheckpointError(f"{path} is a saved model, not a training checkpoint; resume needs checkpoints/")
    if header.get("algo") != algo.name:
        raise CheckpointError(f"{path} is a checkpoint of {header.get('algo')!r}, not of {algo.name}")
    try:
        spaces = (space_from_json(header["observation_space"]), space_from_json(header["action_space"]))
    except _PARSE_ERRORS:
        raise CheckpointError(f"{path} has an incomplete pgrl header; the file is damaged") from None
    if spaces != (algo.observation_space, algo.action_space):
        raise CheckpointError(
            f"{path} was saved for spaces {spaces[0]} / {spaces[1]} but this {algo.env_id} run has "
            f"{algo.observation_space} / {algo.action_space}"
        )
    load_tensors(algo, tensors, path)
    try:
        for name, optimizer in algo.optimizers().items():
            saved = header["optimizers"][name]
            current = optimizer.state_dict()
            state: dict[int, dict[str, Any]] = {}
            prefix = f"ckpt.optim.{name}."
            for key, value in tensors.items():
                if key.startswith(prefix):
                    index, field = key[len(prefix) :].split(".", 1)
                    state.setdefault(int(index), {})[field] = value
            for index, entry in saved["scalars"].items():
                state.setdefault(int(index), {}).update(entry)
            known = {i for group in current["param_groups"] for i in group["params"]}
            if not set(state) <= known:
                raise CheckpointError(f"{path} has optimizer state for parameters {name} does not have")
            groups = saved["param_groups"]
            if len(groups) != len(current["param_groups"]):
                raise CheckpointError(f"{path} has {len(groups)} param groups for {name}, this run has "
                                      f"{len(current['param_groups'])}")
            for group, mine in zip(groups, current["param_groups"], strict=True):
                if list(group["params"]) != list(mine["params"]):
                    raise CheckpointError(f"{path} has another parameter layout for {name}")
                for key, value in mine.items():
                    if key in group and key != "params":
                        mine[key] = tuple(group[key]) if isinstance(value, tuple) else group[key]
            params = {i: p for group, mine in zip(optimizer.param_groups, current["param_groups"], strict=True)
                      for i, p in zip(mine["params"], group["params"], strict=True)}
            for index, entry in state.items():
                for key, value in entry.items():
                    if isinstance(value, torch.Tensor) and value.numel() != 1 and (
                        value.shape != params[index].shape or value.dtype != params[index].dtype
                    ):
                        raise ValueError(f"optimizer state {name}.{index}.{key} has shape {tuple(value.shape)}")
            optimizer.load_state_dict({"state": state, "param_groups": current["param_groups"]})
        extra = {key[len("ckpt."):]: value for key, value in tensors.items()
                 if key.startswith("ckpt.") and not key.startswith(("ckpt.optim.", "ckpt.rng."))}
        algo.load_training_state(header["algo_state"], extra)
        load_rollout_state(algo, extra)
        torch_state = tensors["ckpt.rng.torch"]
        if torch_state.dtype != torch.uint8:
            raise TypeError
        torch.set_rng_state(torch_state)
        if algo.device.type == "cuda" and "ckpt.rng.cuda" in tensors:
            torch.cuda.set_rng_state(tensors["ckpt.rng.cuda"], algo.device)
        kind, keys, pos, has_gauss, gauss = header["rng"]["numpy"]
        np.random.set_state((str(kind), np.asarray(keys, dtype=np.uint32), int(pos), int(has_gauss), float(gauss)))
        version, internal, gauss_next = header["rng"]["python"]
        random.setstate((int(version), tuple(int(x) for x in internal), gauss_next))
        algo.num_timesteps = int(header["num_timesteps"])
        algo.num_episodes = int(header["num_episodes"])
        algo.train_seconds = float(header["train_seconds"])
        saved = header["trainer"]
        trainer_state = {
            "start_step": int(saved["start_step"]),
            "total_timesteps": int(saved["total_timesteps"]),
            "last_row_step": int(saved["last_row_step"]),
            "recent_returns": [float(x) for x in saved["recent_returns"]],
            "recent_lengths": [int(x) for x in saved["recent_lengths"]],
        }
    except CheckpointError:
        raise
    except _PARSE_ERRORS as exc:
        raise CheckpointError(f"{path} has a damaged training state ({_first_line(exc)})") from None
    return trainer_state


class Checkpointer:
    """Writes a checkpoint every ``every`` env steps into ``run_dir/checkpoints``, keeping the newest ``keep``.

    The trainer calls ``maybe_save`` after each update (with ``final=True`` after the last one).
    """

    def __init__(self, run_dir: str | Path, every: int, keep: int = 3):
        if every < 1:
            raise ConfigError(f"--checkpoint-every must be a positive number of steps, got {every}")
        if keep < 1:
            raise ConfigError(f"--keep-checkpoints must be at least 1, got {keep}")
        self.folder = Path(run_dir) / CHECKPOINT_DIR
        self.every, self.keep = int(every), int(keep)
        self.last_step: int | None = None

    def due(self, step: int, final: bool = False) -> bool:
        if self.last_step is None:
            self.last_step = max((s for s, _ in checkpoint_files(self.folder.parent) if s <= step), default=0)
        if step == self.last_step:
            return False
        return final or step // self.every > self.last_step // self.every

    def save(self, algo, trainer_state: dict[str, Any]) -> Path:
        step = algo.num_timesteps
        path = self.folder / f"{CHECKPOINT_PREFIX}{step:012d}{SUFFIX}"
        save_checkpoint(algo, path, trainer_state)
        self.last_step = step
        for old_step, old in checkpoint_files(self.folder.parent)[: -self.keep]:
            if old_step < step:
                old.unlink(missing_ok=True)
        for stale in self.folder.glob(f".{CHECKPOINT_PREFIX}*.tmp"):  # left by a crash mid-write
            stale.unlink(missing_ok=True)
        return path


def newest_checkpoint(algo, run_dir: Path, max_step: int | None = None) -> tuple[Path, dict[str, Any]]:
    """Load the newest checkpoint of ``run_dir`` that reads; warn about and skip damaged ones."""
    import warnings

    files = checkpoint_files(run_dir)
    if not files:
        raise CheckpointError(
            f"{run_dir} has no checkpoints to resume from; train with --checkpoint-every N to write them"
        )
    problems = []
    for step, path in reversed(files):
        if max_step is not None and step > max_step:
            continue
        try:
            return path, load_checkpoint(algo, path)
        except CheckpointError as exc:
            if "damaged" not in str(exc) and "not a readable" not in str(exc) and "corrupt" not in str(exc):
                raise
            warnings.warn(f"skipping damaged checkpoint: {exc}", stacklevel=2)
            problems.append(str(exc))
    raise CheckpointError(f"{run_dir} has no readable checkpoint ({len(problems)} damaged); it cannot be resumed")


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, torch.Tensor):
        return value.item() if value.numel() == 1 else value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value
