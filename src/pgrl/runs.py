"""Run folders: what `pgrl train` and `pgrl eval` do, callable from Python too.

A run folder holds config.json (algorithm, env, seed, hyperparameters, versions), metrics.csv,
TensorBoard events, learning_curve.png, model.safetensors, summary.json and, with
``checkpoint_every``, checkpoints/ckpt_<step>.safetensors that ``resume_run`` continues from.
"""

from __future__ import annotations

import json
import platform
import sys
import time
import warnings
from contextlib import nullcontext
from functools import partial
from pathlib import Path
from typing import Any

import torch

from pgrl import zoo
from pgrl.algos import ALGORITHMS
from pgrl.checkpoint import Checkpointer, checkpoint_files, newest_checkpoint, read_model_file
from pgrl.config import load_config_file, merge, parse_overrides
from pgrl.envs.make import EnvFactory, check_env_id, import_gym_packages
from pgrl.errors import CheckpointError, ConfigError
from pgrl.evaluation import evaluate_policy
from pgrl.logging import truncate_metrics
from pgrl.report import plot_learning_curve


def algorithm_class(name: str):
    key = name.lower().replace("-", "_")
    if key not in ALGORITHMS:
        raise ConfigError(f"unknown algorithm '{name}'; choose one of: {', '.join(sorted(ALGORITHMS))}")
    return ALGORITHMS[key]


def empty_dir(out: str | Path | None, default_name: str, what: str = "run folder", flag: str = "--out") -> Path:
    """``out`` (default: runs/DEFAULT_NAME-TIMESTAMP) created empty; ConfigError if it holds anything."""
    if out is None:
        out = Path("runs") / f"{default_name}-{time.strftime('%Y%m%d-%H%M%S')}"
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"{what} {out} already exists and is not empty; choose another {flag}")
    out.mkdir(parents=True, exist_ok=True)
    return out


def new_run_dir(out: str | Path | None, algo: str, env_id: str, seed: int) -> Path:
    return empty_dir(out, f"{algo}-{env_id}-s{seed}")


def write_atomic(path: Path, data: str | bytes) -> None:
    """Write ``path`` through a temporary file and a rename, so a kill leaves the old file or the new one."""
    tmp = path.with_name(path.name + ".tmp")
    if isinstance(data, bytes):
        tmp.write_bytes(data)
    else:
        tmp.write_text(data)
    tmp.replace(path)


def write_json(path: Path, data: dict[str, Any]) -> None:
    write_atomic(path, json.dumps(data, indent=2, default=str) + "\n")


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
    checkpoint_every: int | None = None,
    keep_checkpoints: int = 3,
    callback=None,
    ray_options=None,
    env_kwargs: dict[str, Any] | None = None,
    env_wrappers: list[str] | None = None,
    gym_packages: list[str] | None = None,
    wandb: dict[str, Any] | None = None,
) -> tuple[Path, Any, dict[str, Any]]:
    """Train into a new run folder; returns (run_dir, model, summary).

    ``wandb`` (keyword arguments of ``pgrl.wandb_log.WandbCallback``: project, offline) logs the
    run to Weights & Biases as well: every metrics row, the config, the run folder's PNGs.

    ``gym_packages`` are imported first (modules that register envs); ``env_kwargs`` go to
    ``gym.make``; ``env_wrappers`` ("module:Class", innermost first) wrap each env copy.

    ``ray_options`` (a ``pgrl.distributed.RayOptions``) trains on Ray: actors collect (or, for
    a3c, compute gradients) and this process learns; see docs/distributed.md.

    ``callback(model, row)`` is called after each metrics row; returning False stops training.

    With ``checkpoint_every`` a checkpoint is written every that many env steps (and at the end)
    into run_dir/checkpoints, keeping the newest ``keep_checkpoints``; ``resume_run`` continues it.
    """
    cls = algorithm_class(algo_name)
    make_checkpointer(cls, Path("."), checkpoint_every, keep_checkpoints)  # validates before any work
    file_values, preset, env_kwargs, env_wrappers = _config_file_layer(
        cls, env_id, config_file, preset, env_kwargs, env_wrappers)
    hparams = merge(file_values, parse_overrides(overrides or []))
    env_options = {"env_kwargs": env_kwargs or None, "env_wrappers": list(env_wrappers or []) or None,
                   "gym_packages": list(gym_packages or []) or None}
    model = _build_model(cls, ray_options, env_id, env_options, seed=seed, device=device, preset=preset,
                         env_backend=env_backend, vectorization=vectorization, **hparams)
    with _ray_session(ray_options):  # joined before the run folder exists: a bad --address leaves none
        run_dir = new_run_dir(out, cls.name, env_id, seed)
        write_run_config(
            run_dir, model, preset=preset, env_backend=env_backend, vectorization=vectorization,
            total_timesteps=total_timesteps, checkpoint_every=checkpoint_every, keep_checkpoints=keep_checkpoints,
            **({"ray": ray_options.to_json()} if ray_options is not None else {}),
            **{key: value for key, value in env_options.items() if value is not None},
        )
        checkpointer = make_checkpointer(cls, run_dir, checkpoint_every, keep_checkpoints)
        logger = None
        if wandb is not None:
            from pgrl.wandb_log import WandbCallback

            logger = WandbCallback(run_dir, **wandb)
            callback = logger if callback is None else [callback, logger]
        try:
            result = _train_and_finish(
                model, run_dir, total_timesteps, progress_bar, eval_episodes, checkpointer, resume_state=None,
                callback=callback, ray_options=ray_options,
            )
        except BaseException:
            if logger is not None:
                logger.finish()
            raise
        if logger is not None:
            logger.finish(result[2])
        return result


def _config_file_layer(cls, env_id: str, config_file, preset: str, env_kwargs, env_wrappers):
    """The --config file's hyperparameters, as (values, preset, env_kwargs, env_wrappers).

    An rl-zoo file (env ids -> hyperparameters, pgrl.zoo) gives env_id's entry translated: it
    replaces pgrl's preset (preset "none"), adds its env_kwargs and wrappers under the user's, and
    warns once per key pgrl leaves out."""
    if not config_file:
        return {}, preset, env_kwargs, env_wrappers
    values = load_config_file(config_file)
    if not zoo.is_zoo_file(values, cls.config_class.model_fields):
        return values, preset, env_kwargs, env_wrappers
    if preset != "default":
        raise ConfigError(f"--preset {preset} cannot be used with {config_file}, an rl-zoo file whose entry "
                          "replaces pgrl's preset; drop --preset")
    entry = zoo.translate(cls.name, env_id, values, cls.config_class.model_fields, f"config file {config_file}")
    for note in entry.notes:
        warnings.warn(note, zoo.ZooWarning, stacklevel=3)
    return (entry.hparams, "none", {**entry.env_kwargs, **(env_kwargs or {})},
            entry.env_wrappers + list(env_wrappers or []))


def _ray_session(ray_options):
    """Ray for the rest of the run (shut down on every exit), or nothing for local runs."""
    if ray_options is None:
        return nullcontext()
    from pgrl.distributed import session_for

    return session_for(ray_options)


def env_for(env_id: str, env_options: dict[str, Any]):
    """The env argument of a run: the id, or an EnvFactory when it has wrappers or kwargs; the
    run's gym packages are imported first."""
    import_gym_packages(env_options.get("gym_packages") or [])
    check_env_id(env_id)
    kwargs, wrappers = env_options.get("env_kwargs") or {}, env_options.get("env_wrappers") or []
    return EnvFactory(env_id, kwargs, tuple(wrappers)) if kwargs or wrappers else env_id


def _build_model(cls, ray_options, env_id: str, env_options: dict[str, Any], **kwargs: Any):
    """The model of a run: local, or the learner of a Ray run (built from a probe env)."""
    env = env_for(env_id, env_options)
    if ray_options is None:
        return cls(kwargs.pop("policy", None), env, **kwargs)
    if env_options.get("env_wrappers"):
        raise ConfigError("--env-wrapper is not available with --backend ray yet; wrap the env in a registered "
                          "env (--gym-package) or train locally")
    from pgrl.distributed import build_model

    return build_model(cls.name, env_id, ray_options, env_kwargs=env_options.get("env_kwargs"), **kwargs)


def write_run_config(run_dir: Path, model, *, preset: str, env_backend: str, vectorization: str,
                     total_timesteps: int | None, checkpoint_every: int | None = None,
                     keep_checkpoints: int = 3, **extra: Any) -> None:
    """run_dir/config.json: what was trained and how, enough for --resume and pgrl report."""
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
            "checkpoint_every": checkpoint_every,
            "keep_checkpoints": keep_checkpoints,
            **extra,
        },
    )


def make_checkpointer(cls, run_dir: Path, every: int | None, keep: int) -> Checkpointer | None:
    if every is None:
        return None
    return Checkpointer(run_dir, every, keep)


def _train_and_finish(model, run_dir: Path, total_timesteps, progress_bar, eval_episodes, checkpointer,
                      resume_state, callback=None, ray_options=None) -> tuple[Path, Any, dict[str, Any]]:
    """Train, then save the model, plot and summarize; on Ctrl-C keep what was learned.

    A TrainingError (NaN, say) propagates without saving the model: the checkpoints keep the
    last good state.
    """
    interrupted = False
    kwargs = {"checkpointer": checkpointer, "resume_state": resume_state} if checkpointer or resume_state else {}
    if callback is not None:
        kwargs["callback"] = callback
    learn = model.learn
    if ray_options is not None:  # uses the run's Ray session, or starts one for a resumed run
        from pgrl.distributed import learn_on_ray

        learn = partial(learn_on_ray, model, ray_options)
    try:
        learn(total_timesteps, progress_bar=progress_bar, log_dir=run_dir, **kwargs)
    except KeyboardInterrupt:
        interrupted = True
    summary = finish_run(model, run_dir, eval_episodes, interrupted)
    if interrupted:
        raise KeyboardInterrupt
    return run_dir, model, summary


def finish_run(model, run_dir: Path, eval_episodes: int, interrupted: bool = False) -> dict[str, Any]:
    """After training: model.safetensors, learning_curve.png, a greedy evaluation and summary.json."""
    model.save(run_dir / "model.safetensors")  # what was learned is kept, even on Ctrl-C
    plot_learning_curve(run_dir, f"{model.name} on {model.env_id} (seed {model.seed})")
    summary: dict[str, Any] = {
        "algo": model.name,
        "env_id": model.env_id,
        "seed": model.seed,
        "num_timesteps": model.num_timesteps,
        "train_seconds": round(model.train_seconds, 3),
        "interrupted": interrupted,
    }
    if eval_episodes > 0 and not interrupted:
        mean, std = evaluate_policy(model, None, eval_episodes, deterministic=True)  # the env it trained on
        summary.update({"eval_episodes": eval_episodes, "eval_return_mean": mean, "eval_return_std": std})
    write_json(run_dir / "summary.json", summary)
    return summary


def resume_run(
    run_dir: str | Path,
    total_timesteps: int | None = None,
    device: str = "auto",
    progress_bar: bool = True,
    eval_episodes: int = 10,
    checkpoint_every: int | None = None,
    keep_checkpoints: int | None = None,
    address: str | None = None,
) -> tuple[Path, Any, dict[str, Any]]:
    """Continue a run folder from its newest readable checkpoint (damaged ones are skipped with a warning).

    A run trained on Ray resumes on Ray with its workers, on the cluster at ``address`` or on a
    Ray started here (fresh episodes on every worker: actors' env states are not checkpointed).

    The budget is the original run's (config.json) unless ``total_timesteps`` is given; metrics.csv
    rows and TensorBoard events after the checkpoint are dropped, since they will be written again.
    """
    run_dir = Path(run_dir)
    if not run_dir.exists():
        raise CheckpointError(f"run folder {run_dir} does not exist; check the --resume path")
    if not run_dir.is_dir():
        raise CheckpointError(f"--resume needs a run folder, but {run_dir} is a file")
    config_path = run_dir / "config.json"
    try:
        saved = json.loads(config_path.read_text())
        if not isinstance(saved, dict):
            raise ValueError
        algo_name, env_id, seed = saved["algo"], saved["env_id"], int(saved["seed"])
        hparams = dict(saved["config"])
    except FileNotFoundError:
        raise CheckpointError(f"{run_dir} has no config.json; --resume needs a folder written by pgrl train") from None
    except (OSError, ValueError, KeyError, TypeError):
        raise CheckpointError(f"{config_path} is damaged; this run folder cannot be resumed") from None
    cls = algorithm_class(str(algo_name))
    every = checkpoint_every if checkpoint_every is not None else saved.get("checkpoint_every")
    keep = keep_checkpoints if keep_checkpoints is not None else saved.get("keep_checkpoints", 3)
    if not checkpoint_files(run_dir):
        raise CheckpointError(
            f"{run_dir} has no checkpoints to resume from; train with --checkpoint-every N to write them"
        )
    checkpointer = make_checkpointer(cls, run_dir, every or 1 << 62, keep)
    ray_options = _saved_ray_options(saved, address)
    model = _build_model(cls, ray_options, env_id, saved_env_options(saved), seed=seed, device=device,
                         env_backend=saved.get("env_backend", "auto"), vectorization=saved.get("vectorization", "sync"),
                         **hparams)
    path, state = newest_checkpoint(model, run_dir)
    if ray_options is None and model.capabilities.exact_resume and model.collector().env_state() is None:
        warnings.warn(
            f"{env_id} runs on Gymnasium, whose env state cannot be saved: resumed episodes start afresh, "
            "so the run continues but not bit-identically",
            stacklevel=2,
        )
    total = int(total_timesteps) if total_timesteps is not None else saved.get("total_timesteps")
    if total is None:
        raise ConfigError(f"{run_dir}/config.json has no total_timesteps; pass --total-timesteps")
    start = int(state.get("start_step", 0))
    if model.num_timesteps >= start + total:
        raise ConfigError(
            f"{run_dir} is already at step {model.num_timesteps} of its {total}-step budget; "
            "pass a larger --total-timesteps to train on"
        )
    truncate_metrics(run_dir / "metrics.csv", model.num_timesteps)
    if total != saved.get("total_timesteps") or every != saved.get("checkpoint_every"):
        write_json(config_path, {**saved, "total_timesteps": total, "checkpoint_every": every,
                                 "keep_checkpoints": keep})
    return _train_and_finish(model, run_dir, total, progress_bar, eval_episodes, checkpointer, state,
                             ray_options=ray_options)


def saved_env_options(saved: dict[str, Any]) -> dict[str, Any]:
    """env_kwargs, env_wrappers and gym_packages of a run's config.json (absent: none)."""
    options = {key: saved.get(key) for key in ("env_kwargs", "env_wrappers", "gym_packages")}
    if not isinstance(options["env_kwargs"] or {}, dict) or not all(
        isinstance(options[key] or [], list) for key in ("env_wrappers", "gym_packages")
    ):
        raise CheckpointError("config.json has damaged env options; this run folder cannot be resumed")
    return options


def _saved_ray_options(saved: dict[str, Any], address: str | None):
    """The RayOptions a run folder was trained with (None for local runs), joining ``address``."""
    ray = saved.get("ray")
    if not isinstance(ray, dict):
        if address is not None:
            raise ConfigError("--address applies to runs trained with --backend ray; this run was trained locally")
        return None
    from pgrl.distributed import RayOptions

    try:
        layout = int(ray["num_workers"]), ray.get("envs_per_worker"), ray.get("max_staleness")
    except (KeyError, TypeError, ValueError):
        raise CheckpointError("config.json has a damaged 'ray' entry; this run folder cannot be resumed") from None
    return RayOptions(layout[0], layout[1], address, layout[2])


def load_run_model(path: str | Path, device: str = "auto"):
    """The model in a run folder (or a model file), whatever its algorithm."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"run folder or model file {path} does not exist; check the path")
    model_file = path / "model.safetensors" if path.is_dir() else path
    if path.is_dir() and not model_file.exists():
        hint = " (or one of its checkpoints/)" if checkpoint_files(path) else ""
        raise CheckpointError(f"{path} is a folder without model.safetensors; pass a model file{hint} or a run folder")
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
    mean, std = evaluate_policy(model, run_env(path, model), episodes, deterministic=deterministic, seed=seed,
                                backend=env_backend)
    return model, mean, std


def run_env(path: str | Path, model):
    """The env a run folder's model is evaluated on: the one it was trained on (its kwargs and
    wrappers, from config.json), else (a model file) the model's env id."""
    config_path = Path(path) / "config.json"
    if config_path.is_file():
        try:
            saved = json.loads(config_path.read_text())
        except (OSError, ValueError):
            saved = None
        if isinstance(saved, dict) and saved.get("env_id") == model.env_id:
            return env_for(model.env_id, saved_env_options(saved))
    return model.env_id
