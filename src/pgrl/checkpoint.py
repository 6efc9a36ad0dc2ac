"""Saved models: one safetensors file, tensors plus a JSON header; never pickle.

The JSON (stored in the safetensors metadata under "pgrl") holds the format version, the
algorithm, env id, config, observation and action spaces, and counters, so a model can be
loaded, checked and used without creating its environment.
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

from pgrl.errors import CheckpointError

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
    raise CheckpointError(f"cannot save a model for the space {space}")


def space_from_json(data: dict[str, Any]) -> gym.Space:
    if data["type"] == "Discrete":
        return gym.spaces.Discrete(data["n"], start=data.get("start", 0))
    if data["type"] == "Box":
        dtype = np.dtype(data["dtype"])
        return gym.spaces.Box(
            np.asarray(data["low"], dtype=dtype),
            np.asarray(data["high"], dtype=dtype),
            tuple(data["shape"]),
            dtype,
        )
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
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(
            f"{path} is not a readable pgrl model ({str(exc).splitlines()[0][:120]})"
        ) from None
    if "pgrl" not in metadata:
        raise CheckpointError(f"{path} is a safetensors file but not a pgrl model (no 'pgrl' header)")
    try:
        header = json.loads(metadata["pgrl"])
        if not isinstance(header, dict):
            raise ValueError
    except ValueError:
        raise CheckpointError(f"{path} has a corrupt pgrl header; the file is damaged") from None
    version = header.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(f"{path} has model format {version!r}; this pgrl reads format {FORMAT_VERSION}")
    return header, tensors


def load_model(cls, path: Path, env=None, device: str = "auto", overrides: dict | None = None):
    from pgrl.algos import ALGORITHMS

    header, tensors = read_model_file(path)
    algo_name = header.get("algo")
    if getattr(cls, "name", None) != algo_name:
        target = ALGORITHMS.get(algo_name)
        if hasattr(cls, "name") or target is None:
            raise CheckpointError(
                f"{path} holds a {algo_name} model, not {cls.name}; load it with {type_name(algo_name)}.load"
            )
        cls = target
    try:
        observation_space = space_from_json(header["observation_space"])
        action_space = space_from_json(header["action_space"])
        config = dict(header["config"])
        env_id = header["env_id"]
    except (KeyError, TypeError, ValueError):
        raise CheckpointError(f"{path} has an incomplete pgrl header; the file is damaged") from None
    config.update(overrides or {})
    algo = cls(
        "MlpPolicy",
        env if env is not None else env_id,
        seed=header.get("seed", 0),
        device=device,
        _build_env=False,
        **config,
    )
    if algo.env is not None:
        got = (algo.env.single_observation_space, algo.env.single_action_space)
        if got != (observation_space, action_space):
            raise CheckpointError(
                f"{path} was trained on {env_id} with spaces {observation_space} / {action_space}, "
                f"but the given env {algo.env_id} has {got[0]} / {got[1]}"
            )
    else:
        algo._build(observation_space, action_space)
    load_tensors(algo, tensors, path)
    algo.num_timesteps = int(header.get("num_timesteps", 0))
    algo.policy.eval()
    return algo


def load_tensors(algo, tensors: dict[str, torch.Tensor], path: Path) -> None:
    for prefix, module in algo.tensors().items():
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
        extra = set(state) - set(expected)
        if extra:
            raise CheckpointError(f"{path} has unexpected tensors ({sorted(extra)[0]}, ...) for {prefix}")
        module.load_state_dict({k: v.to(algo.device) for k, v in state.items()})


def type_name(algo_name: str) -> str:
    from pgrl.algos import ALGORITHMS

    cls = ALGORITHMS.get(algo_name)
    return cls.__name__ if cls is not None else "pgrl.load_model"
