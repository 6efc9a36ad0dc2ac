"""Bad inputs across the CLI and the API: each ends in one sentence naming it (CLI: exit status 2).

tests/integration/test_cli.py covers unknown env ids and algorithms, unknown and ill-typed
hyperparameters, YAML errors, missing config files, presets and eval paths; this table adds
sizes, checkpoints and resume.  (Unreadable paths are tested with a folder where a file is
expected: the tests run as root, for whom chmod 000 does not stop reading.)
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from pgrl import A2C, PPO
from pgrl.checkpoint import Checkpointer, checkpoint_files, load_checkpoint
from pgrl.cli import main
from pgrl.envs.make import make_env
from pgrl.errors import CheckpointError, ConfigError, EnvError, PGRLError
from pgrl.runs import train_run

TINY_SETS = ["n_steps=32", "n_envs=2", "batch_size=32", "n_epochs=1", "policy_kwargs={net_arch: [8]}"]
TINY = {"n_steps": 32, "n_envs": 2, "batch_size": 32, "n_epochs": 1, "policy_kwargs": {"net_arch": [8]}}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """A finished run with checkpoints, one without, a damaged copy and two saved models."""
    root = tmp_path_factory.mktemp("bad-inputs")
    kwargs = dict(device="cpu", progress_bar=False, eval_episodes=0, overrides=TINY_SETS)
    with_ckpt, _, _ = train_run(
        "ppo", "CartPole-v1", total_timesteps=128, out=root / "with", checkpoint_every=64, **kwargs
    )
    without, _, _ = train_run("ppo", "CartPole-v1", total_timesteps=64, out=root / "without", **kwargs)
    damaged = root / "damaged"
    shutil.copytree(with_ckpt, damaged)
    for _, path in checkpoint_files(damaged):
        path.write_bytes(path.read_bytes()[:100])
    bad_config = root / "bad-config"
    shutil.copytree(with_ckpt, bad_config)
    (bad_config / "config.json").write_text("{not json")
    A2C("MlpPolicy", "CartPole-v1", device="cpu").save(root / "a2c-model")
    PPO("MlpPolicy", "CartPole-v1", device="cpu", **{**TINY, "policy_kwargs": {"net_arch": [32]}}).save(
        root / "wide-model"
    )
    truncated = root / "truncated.safetensors"
    truncated.write_bytes((with_ckpt / "model.safetensors").read_bytes()[:300])
    folder_as_file = root / "folder.safetensors"
    folder_as_file.mkdir()
    return {
        "with": with_ckpt,
        "without": without,
        "damaged": damaged,
        "bad_config": bad_config,
        "root": root,
        "truncated": truncated,
        "folder_as_file": folder_as_file,
    }


# (argv, message): {name} is replaced by the fixture's path of that name.
CLI_CASES = [
    (
        ["train", "ppo", "CartPole-v1", "--set", "n_envs=0"],
        "hyperparameter 'n_envs' for ppo is invalid: input should be greater than 0",
    ),
    (
        ["train", "a2c", "CartPole-v1", "--set", "n_steps=-1"],
        "hyperparameter 'n_steps' for a2c is invalid: input should be greater than 0",
    ),
    (["train", "ppo", "CartPole-v1", "--set", "batch_size=0"], "hyperparameter 'batch_size' for ppo is invalid"),
    (
        ["train", "ppo", "CartPole-v1", "--set", "n_steps=10", "--set", "n_envs=3", "--set", "batch_size=4"],
        "n_steps * n_envs = 30 is not a multiple of batch_size 4",
    ),
    (
        ["train", "ppo", "CartPole-v1", "--set", "learning_rate=lin_x"],
        "'lin_x' is not a number or 'lin_<number>' schedule",
    ),
    (["train", "ppo", "CartPole-v1", "--device", "tpu"], "unknown device 'tpu'; use cpu, cuda or auto"),
    (["--threads", "0", "train", "ppo", "CartPole-v1"], "--threads must be at least 1, got 0"),
    (["train", "ppo", "CartPole-v1", "--checkpoint-every", "0"], "--checkpoint-every must be a positive whole number"),
    (
        ["train", "ppo", "CartPole-v1", "--checkpoint-every", "2.5"],
        "--checkpoint-every must be a positive whole number",
    ),
    (["train", "ppo", "CartPole-v1", "--keep-checkpoints", "0"], "--keep-checkpoints must be at least 1, got 0"),
    (["train", "ppo", "CartPole-v1", "--config", "{root}"], "cannot be read (Is a directory)"),
    (["train"], "pgrl train needs ALGO and ENV_ID"),
    (["train", "ppo", "CartPole-v1", "--resume", "{with}"], "--resume RUN_DIR takes no ALGO or ENV_ID"),
    (["train", "--resume", "{root}/nope"], "does not exist; check the --resume path"),
    (["train", "--resume", "{truncated}"], "--resume needs a run folder, but"),
    (["train", "--resume", "{root}"], "has no config.json; --resume needs a folder written by pgrl train"),
    (["train", "--resume", "{without}"], "has no checkpoints to resume from; train with --checkpoint-every N"),
    (["train", "--resume", "{damaged}"], "has no readable checkpoint (2 damaged); it cannot be resumed"),
    (["train", "--resume", "{bad_config}"], "config.json is damaged; this run folder cannot be resumed"),
    (["train", "--resume", "{with}"], "is already at step 128 of its 128-step budget; pass a larger --total-timesteps"),
    (["eval", "{truncated}"], "is not a readable pgrl model"),
    (["eval", "{folder_as_file}"], "is a folder without model.safetensors"),
    (["eval", "{with}", "--episodes", "0"], "--episodes must be at least 1, got 0"),
]


@pytest.mark.parametrize(("argv", "message"), CLI_CASES, ids=[" ".join(a[:5]) for a, _ in CLI_CASES])
def test_cli_bad_input_is_one_sentence_and_exit_2(runs, capsys, tmp_path, argv, message):
    argv = [arg.format(**{k: str(v) for k, v in runs.items()}) for arg in argv]
    if argv[0] == "train" or argv[:3] == ["--threads", "0", "train"]:
        argv += ["--no-progress"] + (["--out", str(tmp_path / "run")] if "--resume" not in argv else [])
    with pytest.warns() if "damaged" in " ".join(argv) else _nothing():
        code = main(argv)
    out, err = capsys.readouterr()
    assert code == 2, err
    assert message in err
    lines = [line for line in err.strip().splitlines() if line]
    assert len(lines) == 1 and lines[0].startswith("pgrl: error: ") and "Traceback" not in err
    assert not (tmp_path / "run" / "model.safetensors").exists()


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _load_into(path_key: str, target):
    def run(runs):
        return load_checkpoint(target(), checkpoint_files(runs[path_key])[-1][1])

    return run


# (callable of the fixture, error class, message)
API_CASES = [
    ("policy name", lambda r: PPO("CnnPolicy", "CartPole-v1"), ConfigError, "CnnPolicy's NatureCNN takes uint8 image"),
    ("env type", lambda r: PPO("MlpPolicy", 42), EnvError,
     "env must be a Gymnasium id, a gymnasium.Env, a gymnasium VectorEnv, a callable returning a gymnasium.Env "
     "or a pgrl VecEnv, not int"),
    (
        "zero budget",
        lambda r: A2C("MlpPolicy", "CartPole-v1", device="cpu").learn(0),
        ConfigError,
        "total_timesteps must be positive, got 0",
    ),
    ("zero envs", lambda r: make_env("CartPole-v1", num_envs=0), EnvError, "num_envs must be at least 1, got 0"),
    ("backend", lambda r: make_env("CartPole-v1", backend="jax"), EnvError, "unknown env backend 'jax'"),
    (
        "native only",
        lambda r: make_env("LunarLander-v3", backend="native"),
        EnvError,
        "pgrl has no native implementation of LunarLander-v3",
    ),
    (
        "bad key",
        lambda r: PPO("MlpPolicy", "CartPole-v1", clip_rnage=0.1),
        ConfigError,
        "unknown hyperparameter 'clip_rnage' for ppo",
    ),
    (
        "checkpoint of another algo",
        _load_into("with", lambda: A2C("MlpPolicy", "CartPole-v1", device="cpu")),
        CheckpointError,
        "is a checkpoint of 'ppo', not of a2c",
    ),
    (
        "checkpoint of other spaces",
        _load_into("with", lambda: PPO("MlpPolicy", "MountainCar-v0", device="cpu", **TINY)),
        CheckpointError,
        "was saved for spaces Box(",
    ),
    (
        "checkpoint of other shape",
        _load_into("with", lambda: PPO("MlpPolicy", "CartPole-v1", device="cpu", **{**TINY, "policy_kwargs": {}})),
        CheckpointError,
        "but this network needs (64, 4); check policy_kwargs.net_arch",
    ),
    (
        "model of another algo",
        lambda r: PPO.load(r["root"] / "a2c-model.safetensors"),
        CheckpointError,
        "holds a a2c model, not ppo; load it with A2C.load",
    ),
    (
        "model of other shape",
        lambda r: PPO.load(r["root"] / "wide-model.safetensors", policy_kwargs={"net_arch": [8]}),
        CheckpointError,
        "of shape (32, 4) but this network needs (8, 4)",
    ),
    (
        "model with other spaces",
        lambda r: PPO.load(r["with"] / "model.safetensors", env="Acrobot-v1"),
        CheckpointError,
        "was trained on CartPole-v1 with spaces",
    ),
    (
        "model is a checkpoint's opposite",
        lambda r: load_checkpoint(
            PPO("MlpPolicy", "CartPole-v1", device="cpu", **TINY), r["with"] / "model.safetensors"
        ),
        CheckpointError,
        "is a saved model, not a training checkpoint",
    ),
    (
        "missing model",
        lambda r: PPO.load(r["root"] / "nothing-here"),
        CheckpointError,
        "does not exist; check the path",
    ),
    (
        "checkpointer sizes",
        lambda r: Checkpointer(r["root"], every=-5),
        ConfigError,
        "--checkpoint-every must be a positive number of steps, got -5",
    ),
]


@pytest.mark.parametrize(("name", "call", "error", "message"), API_CASES, ids=[c[0] for c in API_CASES])
def test_api_bad_input_raises_a_pgrl_error_with_one_sentence(runs, name, call, error, message):
    with pytest.raises(error) as info:
        call(runs)
    assert isinstance(info.value, PGRLError)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_config_json_records_the_checkpoint_settings(runs):
    config = json.loads((runs["with"] / "config.json").read_text())
    assert config["checkpoint_every"] == 64 and config["keep_checkpoints"] == 3
