"""Run folders: what `pgrl train` and `pgrl eval` do, callable from Python too.

A run folder holds config.json (algorithm, env, seed, hyperparameters, versions), metrics.csv,
TensorBoard events, learning_curve.png, model.safetensors and summary.json.
"""

from __future__ import annotations

import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import torch

from pgrl.algos import ALGORITHMS
from pgrl.checkpoint import read_model_file
from pgrl.config import load_config_file, merge, parse_overrides
from pgrl.errors import CheckpointError, ConfigError
from pgrl.evaluation import evaluate_policy
from pgrl.report import plot_learning_curve


def algorithm_class(name: str):
    key = name.lower().replace("-", "_")
    if key not in ALGORITHMS:
        raise ConfigError(f"unknown algorithm '{name}'; choose one of: {', '.join(sorted(ALGORITHMS))}")
    return ALGORITHMS[key]


def new_run_dir(out: str | Path | None, algo: str, env_id: str, seed: int) -> Path:
    if out is None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        out = Path("runs") / f"{algo}-{env_id}-s{seed}-{stamp}"
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"run folder {out} already exists and is not empty; choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    return out


def write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
    tmp.replace(path)


def train_run(
    algo_name: str,
    env_id: str,
    seed: int = 0,
    total_timesteps: int | None = None,
    config_file: str | Path | None = None,
    overrides: list[str] | None = None,
    device: str = "auto",
    out: str | Path | None = None,
    preset: str = "default",
    env_backend: str = "auto",
    vectorization: str = "sync",
    progress_bar: bool = True,
    eval_episodes: int = 10,
) -> tuple[Path, Any, dict[str, Any]]:
    """Train into a new run folder; returns (run_dir, model, summary)."""
    cls = algorithm_class(algo_name)
    hparams = merge(load_config_file(config_file) if config_file else {}, parse_overrides(overrides or []))
    model = cls(
        "MlpPolicy",
        env_id,
        seed=seed,
        device=device,
        preset=preset,
        env_backend=env_backend,
        vectorization=vectorization,
        **hparams,
    )
    run_dir = new_run_dir(out, cls.name, env_id, seed)
    write_json(
        run_dir / "config.json",
        {
            **model.describe(),
            "preset": preset,
            "env_backend": env_backend,
            "vectorization": vectorization,
            "device": str(model.device),
            "total_timesteps": total_timesteps or model.config.n_timesteps,
            "versions": {"python": platform.python_version(), "torch": torch.__version__},
            "command": sys.argv,
        },
    )
    interrupted = False
    try:
        model.learn(total_timesteps, progress_bar=progress_bar, log_dir=run_dir)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        model.save(run_dir / "model.safetensors")  # what was learned is kept, even on Ctrl-C
        plot_learning_curve(run_dir, f"{cls.name} on {env_id} (seed {seed})")
    summary: dict[str, Any] = {
        "algo": cls.name,
        "env_id": env_id,
        "seed": seed,
        "num_timesteps": model.num_timesteps,
        "train_seconds": round(model.train_seconds, 3),
        "interrupted": interrupted,
    }
    if eval_episodes > 0 and not interrupted:
        mean, std = evaluate_policy(model, env_id, eval_episodes, deterministic=True)
        summary.update({"eval_episodes": eval_episodes, "eval_return_mean": mean, "eval_return_std": std})
    write_json(run_dir / "summary.json", summary)
    if interrupted:
        raise KeyboardInterrupt
    return run_dir, model, summary


def load_run_model(path: str | Path, device: str = "auto"):
    """The model in a run folder (or a model file), whatever its algorithm."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"run folder or model file {path} does not exist; check the path")
    model_file = path / "model.safetensors" if path.is_dir() else path
    header, _ = read_model_file(model_file)
    cls = ALGORITHMS.get(header.get("algo"))
    if cls is None:
        raise CheckpointError(f"{model_file} holds an unknown algorithm {header.get('algo')!r}")
    return cls.load(model_file, device=device)


def eval_run(
    path: str | Path,
    episodes: int = 100,
    deterministic: bool = True,
    seed: int | None = None,
    env_backend: str = "auto",
    device: str = "auto",
) -> tuple[Any, float, float]:
    if episodes < 1:
        raise ConfigError(f"--episodes must be at least 1, got {episodes}")
    model = load_run_model(path, device=device)
    mean, std = evaluate_policy(
        model, model.env_id, episodes, deterministic=deterministic, seed=seed, backend=env_backend
    )
    return model, mean, std
