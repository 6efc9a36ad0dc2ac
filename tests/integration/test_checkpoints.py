"""Training checkpoints: exact resume, crash safety, NaN guards, normalization statistics, determinism."""

from __future__ import annotations

import csv
import json
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

from pgrl import A2C, PPO, REINFORCE, TRPO, VPG, ActorCritic
from pgrl.checkpoint import (
    Checkpointer,
    checkpoint_files,
    load_checkpoint,
    newest_checkpoint,
    read_model_file,
)
from pgrl.errors import CheckpointError, TrainingError
from pgrl.loops.trainer import check_gradients
from pgrl.runs import eval_run, load_run_model, resume_run, train_run

TIME_COLUMNS = ("time/elapsed", "time/sps")  # wall-clock columns differ between identical runs
TINY = {"policy_kwargs": {"net_arch": [16]}}

# (class, X, hyperparameters): X steps, then X more.  X is a whole number of rollouts at which
# a metrics row is written (rows come every max(1, 2X // 200) steps), where the callback stops.
RESUME_CASES = {
    "ppo": (
        PPO,
        2560,
        {
            "n_steps": 64,
            "n_envs": 4,
            "batch_size": 64,
            "n_epochs": 2,
            "normalize": True,
            "normalize_reward": True,
            "kl_coef": 0.1,
            "learning_rate": "lin_3e-4",
            **TINY,
        },
    ),
    "a2c": (A2C, 2580, {"n_steps": 5, "n_envs": 4, "normalize": True, "normalize_reward": True, **TINY}),
    # LSTM policies: the recurrent states and episode starts are part of the collector's checkpoint
    "ppo_lstm": (PPO, 1280, {"policy": "MlpLstmPolicy", "n_steps": 32, "n_envs": 4, "batch_size": 64,
                             "n_epochs": 2, "normalize": True, "policy_kwargs": {"net_arch": [16],
                                                                                "lstm_hidden_size": 8}}),
    "a2c_lstm": (A2C, 1280, {"policy": "MlpLstmPolicy", "n_steps": 5, "n_envs": 4, "normalize": True,
                             "policy_kwargs": {"net_arch": [16], "lstm_hidden_size": 8}}),
}


def params_of(model) -> dict[str, torch.Tensor]:
    return {key: value.clone() for key, value in model.policy.state_dict().items()}


def read_metrics(path: Path) -> tuple[list[str], list[list[str]]]:
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    return rows[0], rows[1:]


def without_time(header: list[str], rows: list[list[str]]) -> list[list[str]]:
    keep = [i for i, name in enumerate(header) if name not in TIME_COLUMNS]
    return [[name for i, name in enumerate(header) if i in keep]] + [[row[i] for i in keep] for row in rows]


@pytest.mark.parametrize("name", sorted(RESUME_CASES))
def test_resume_is_bit_identical_to_an_uninterrupted_run(name, tmp_path):
    cls, X, hparams = RESUME_CASES[name]
    hparams = dict(hparams)
    policy = hparams.pop("policy", "MlpPolicy")
    reference = cls(policy, "CartPole-v1", seed=3, device="cpu", **hparams)
    reference.learn(2 * X, log_dir=tmp_path / "reference")

    # First process: stops after X steps (the callback), leaving a checkpoint at X.
    run = tmp_path / "run"
    first = cls(policy, "CartPole-v1", seed=3, device="cpu", **hparams)
    first.learn(
        2 * X,
        log_dir=run,
        checkpointer=Checkpointer(run, every=1000, keep=2),
        callback=lambda algo, row: algo.num_timesteps < X,
    )
    assert first.num_timesteps == X
    assert checkpoint_files(run)[-1][0] == X
    assert len(checkpoint_files(run)) == 2  # keep=2 removed older ones
    del first
    torch.manual_seed(1234)  # the resumed run must not depend on the global RNG it starts with
    np.random.seed(5)

    # "Second process": new objects, state only from the checkpoint.
    resumed = cls(policy, "CartPole-v1", seed=3, device="cpu", **hparams)
    path, state = newest_checkpoint(resumed, run)
    assert path.name == f"ckpt_{X:012d}.safetensors" and resumed.num_timesteps == X
    resumed.learn(2 * X, log_dir=run, checkpointer=Checkpointer(run, every=1000), resume_state=state)

    assert resumed.num_timesteps == reference.num_timesteps == 2 * X
    expected, got = params_of(reference), params_of(resumed)
    for key in expected:
        assert torch.equal(expected[key], got[key]), key
    assert torch.equal(reference.obs_normalizer.stats.mean, resumed.obs_normalizer.stats.mean)
    assert resumed.num_episodes == reference.num_episodes
    if name == "ppo":
        assert resumed.kl_coef == reference.kl_coef
    assert without_time(*read_metrics(run / "metrics.csv")) == without_time(
        *read_metrics(tmp_path / "reference" / "metrics.csv")
    )


def test_cli_resume_of_a_finished_prefix_matches_and_continues_the_budget(tmp_path):
    args = dict(
        seed=1,
        device="cpu",
        progress_bar=False,
        eval_episodes=0,
        overrides=["n_steps=32", "n_envs=2", "batch_size=32", "n_epochs=2", "policy_kwargs={net_arch: [8]}"],
    )
    full, model, _ = train_run(
        "ppo",
        "CartPole-v1",
        total_timesteps=2048,
        out=tmp_path / "full",
        checkpoint_every=512,
        keep_checkpoints=10,
        **args,
    )
    cut = tmp_path / "cut"
    shutil.copytree(full, cut)
    for step, path in checkpoint_files(cut):
        if step > 1024:
            path.unlink()
    (cut / "model.safetensors").unlink()
    _, resumed, _ = resume_run(cut, device="cpu", progress_bar=False, eval_episodes=0)
    assert resumed.num_timesteps == 2048  # the original budget, from config.json
    for key, value in params_of(model).items():
        assert torch.equal(value, params_of(resumed)[key]), key
    assert without_time(*read_metrics(cut / "metrics.csv")) == without_time(*read_metrics(full / "metrics.csv"))
    tensorboard = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    events = tensorboard.EventAccumulator(str(cut))
    events.Reload()  # the events after the checkpoint were purged (purge_step), none twice
    assert [event.step for event in events.Scalars("loss/policy")] == [
        int(row[0]) for row in read_metrics(cut / "metrics.csv")[1]
    ]
    # A larger budget continues a finished run.
    _, longer, _ = resume_run(cut, total_timesteps=2560, device="cpu", progress_bar=False, eval_episodes=0)
    assert longer.num_timesteps == 2560
    assert json.loads((cut / "config.json").read_text())["total_timesteps"] == 2560


def test_a_damaged_newest_checkpoint_is_skipped_with_a_warning(tmp_path):
    model = PPO("MlpPolicy", "CartPole-v1", seed=0, device="cpu", n_steps=32, n_envs=2, batch_size=32, **TINY)
    model.learn(256, log_dir=tmp_path, checkpointer=Checkpointer(tmp_path, every=64, keep=5))
    files = checkpoint_files(tmp_path)
    newest = files[-1][1]
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])
    fresh = PPO("MlpPolicy", "CartPole-v1", seed=0, device="cpu", n_steps=32, n_envs=2, batch_size=32, **TINY)
    with pytest.warns(UserWarning, match="skipping damaged checkpoint"):
        path, _ = newest_checkpoint(fresh, tmp_path)
    assert path == files[-2][1] and fresh.num_timesteps == files[-2][0]


# -- crash safety --------------------------------------------------------------------------------

CRASH_ARGS = [
    "ppo",
    "CartPole-v1",
    "--total-timesteps",
    "1000000",
    "--seed",
    "0",
    "--device",
    "cpu",
    "--env-backend",
    "native",
    "--no-progress",
    "--eval-episodes",
    "0",
    "--checkpoint-every",
    "512",
    "--keep-checkpoints",
    "2",
    "--set",
    "n_steps=32",
    "--set",
    "n_envs=2",
    "--set",
    "batch_size=32",
    "--set",
    "n_epochs=1",
    "--set",
    "policy_kwargs={net_arch: [8]}",
]


def newest_step(run: Path) -> int:
    files = checkpoint_files(run)
    return files[-1][0] if files else -1


def check_run_folder(run: Path) -> int:
    """Every checkpoint reads, metrics.csv parses with one header and strictly increasing steps."""
    files = checkpoint_files(run)
    for _, path in files:
        read_model_file(path)
    metrics = run / "metrics.csv"
    if metrics.exists() and metrics.stat().st_size:
        header, rows = read_metrics(metrics)
        assert header[0] == "step"
        steps = [int(row[0]) for row in rows]
        assert all(len(row) == len(header) for row in rows)
        assert steps == sorted(set(steps))
    return files[-1][0] if files else 0


@pytest.mark.slow  # about a minute and a half: `make test-long` (CI) runs it
def test_sigkill_at_random_moments_never_loses_more_than_since_the_last_checkpoint(tmp_path):
    rng = random.Random(0)
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    started = time.monotonic()
    newest = 0
    for attempt in range(20):
        argv = ["train", *CRASH_ARGS, "--out", str(run)] if attempt == 0 else ["train", "--resume", str(run)]
        proc = subprocess.Popen(
            [sys.executable, "-m", "pgrl.cli", *argv], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        if attempt % 2 == 0:
            # Every other process is let write a checkpoint of its own first (the first one so there
            # is something to resume; the later ones so the run moves on however slowly processes
            # start on this machine); the kill still comes at a random moment after that.
            deadline = time.monotonic() + 60
            while newest_step(run) <= newest and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 2.5))
        assert proc.poll() is None, proc.stderr.read().decode()  # still training: the resume worked
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stderr.close()
        step = check_run_folder(run)
        assert step >= newest  # at most the steps since the last checkpoint are lost
        newest = step
        if attempt == 0:
            after_first = newest
    assert newest > after_first  # the resumed processes trained on
    # Finally one resume that runs to the end of a budget just past the newest checkpoint.
    proc = subprocess.run(
        [sys.executable, "-m", "pgrl.cli", "train", "--resume", str(run), "--total-timesteps", str(newest + 1024)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert check_run_folder(run) == newest + 1024
    assert int(read_metrics(run / "metrics.csv")[1][-1][0]) == newest + 1024
    assert time.monotonic() - started < 150


# -- NaN guards ------------------------------------------------------------------------------------


class NaNRewardEnv(gym.Env):
    """Rewards 1.0, then NaN from step ``bad_step`` of the episode on."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, bad_step: int = 50, bad_obs: bool = False):
        self.t, self.bad_step, self.bad_obs = 0, bad_step, bad_obs

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(2, np.float32), {}

    def step(self, action):
        self.t += 1
        bad = self.t >= self.bad_step
        obs = np.full(2, np.nan if bad and self.bad_obs else 0.0, np.float32)
        reward = float("nan") if bad and not self.bad_obs else 1.0
        return obs, reward, False, False, {}


if "pgrl-test/NaN-v0" not in gym.registry:
    gym.register("pgrl-test/NaN-v0", entry_point=NaNRewardEnv, max_episode_steps=1000)


@pytest.mark.parametrize(("bad_obs", "quantity"), [(False, "rewards"), (True, "observations")])
def test_non_finite_env_output_stops_with_its_name_and_step_and_keeps_checkpoints(tmp_path, bad_obs, quantity):
    run = tmp_path / "run"
    with pytest.raises(TrainingError, match=rf"non-finite {quantity} from pgrl-test/NaN-v0 .* step 64;"):
        _nan_run(run, bad_obs)
    assert [step for step, _ in checkpoint_files(run)][-1] == 48  # the last good state is kept


def _nan_run(run: Path, bad_obs: bool):
    from pgrl.envs.gym_adapter import GymVecEnv

    env = GymVecEnv([lambda: NaNRewardEnv(bad_step=50, bad_obs=bad_obs)], "pgrl-test/NaN-v0")
    model = A2C("MlpPolicy", env, seed=0, device="cpu", n_steps=16, n_envs=1, **TINY)
    model.learn(1000, log_dir=run, checkpointer=Checkpointer(run, every=16, keep=10))


def test_non_finite_gradients_and_parameters_are_named():
    model = A2C("MlpPolicy", "CartPole-v1", seed=0, device="cpu", **TINY)
    check_gradients(model)  # fresh model: fine
    param = next(model.policy.parameters())
    param.grad = torch.full_like(param, float("nan"))
    model.num_timesteps = 77
    with pytest.raises(TrainingError, match="a2c gradient norm became nan at step 77"):
        check_gradients(model)
    param.grad = None
    with torch.no_grad():
        param[0] = float("inf")
    with pytest.raises(TrainingError, match="parameters became non-finite at step 77"):
        check_gradients(model)


# -- normalization statistics ------------------------------------------------------------------------


def test_saved_normalization_statistics_are_the_ones_eval_and_predict_use(tmp_path):
    run, model, _ = train_run(
        "ppo",
        "CartPole-v1",
        total_timesteps=512,
        device="cpu",
        out=tmp_path / "run",
        progress_bar=False,
        eval_episodes=0,
        overrides=[
            "n_steps=64",
            "n_envs=2",
            "batch_size=64",
            "normalize=true",
            "normalize_reward=true",
            "policy_kwargs={net_arch: [8]}",
        ],
    )
    stats = model.obs_normalizer.stats
    assert float(stats.count) > 500  # it did learn statistics
    for loaded in (
        load_run_model(run, device="cpu"),
        eval_run(run, episodes=1, device="cpu")[0],
        PPO.load(run / "model.safetensors", device="cpu"),
    ):
        for key in ("mean", "var", "count"):
            assert torch.equal(getattr(loaded.obs_normalizer.stats, key), getattr(stats, key)), key
    loaded = PPO.load(run / "model.safetensors", device="cpu")
    obs = np.random.default_rng(0).normal(size=(32, 4)).astype(np.float32) * 3
    normalized = torch.clamp(
        (torch.as_tensor(obs) - stats.mean.float()) / torch.sqrt(stats.var.float() + 1e-8), -10, 10
    )
    expected = loaded.policy.act(normalized, deterministic=True)[0].numpy()
    assert np.array_equal(loaded.predict(obs)[0], expected)
    unnormalized = loaded.policy.act(torch.as_tensor(obs), deterministic=True)[0].numpy()
    assert not np.array_equal(unnormalized, expected)  # the statistics matter for these observations


# -- determinism -----------------------------------------------------------------------------------------

DETERMINISM = {
    "reinforce": (REINFORCE, {"n_envs": 2}),
    "vpg": (VPG, {"n_envs": 2}),
    "actor_critic": (ActorCritic, {"n_envs": 2}),
    "a2c": (A2C, {"n_steps": 8, "n_envs": 2}),
    "ppo": (PPO, {"n_steps": 64, "n_envs": 2, "batch_size": 32, "n_epochs": 2}),
    "trpo": (TRPO, {"n_steps": 128, "n_envs": 2}),
}


@pytest.mark.parametrize("name", sorted(DETERMINISM))
def test_same_seed_gives_the_same_metrics_csv_except_time_columns(name, tmp_path):
    cls, hparams = DETERMINISM[name]
    tables = []
    for attempt in range(2):
        torch.manual_seed(100 + attempt)  # unrelated global state must not matter
        model = cls("MlpPolicy", "CartPole-v1", seed=7, device="cpu", **hparams, **TINY)
        model.learn(1024, log_dir=tmp_path / str(attempt))
        header, rows = read_metrics(tmp_path / str(attempt) / "metrics.csv")
        assert len(rows) >= 3
        tables.append(without_time(header, rows))
    assert tables[0] == tables[1]
    assert all(not math.isnan(float(row[0])) for row in tables[0][1:])


def test_load_checkpoint_into_another_algorithm_or_network_names_the_mismatch(tmp_path):
    model = PPO("MlpPolicy", "CartPole-v1", seed=0, device="cpu", n_steps=32, n_envs=2, batch_size=32, **TINY)
    model.learn(64, checkpointer=Checkpointer(tmp_path, every=64))
    path = checkpoint_files(tmp_path)[-1][1]
    with pytest.raises(CheckpointError, match="is a checkpoint of 'ppo', not of a2c"):
        load_checkpoint(A2C("MlpPolicy", "CartPole-v1", device="cpu", **TINY), path)
    wide = PPO(
        "MlpPolicy", "CartPole-v1", device="cpu", n_steps=32, n_envs=2, batch_size=32, policy_kwargs={"net_arch": [32]}
    )
    with pytest.raises(CheckpointError, match=r"of shape \(16, 4\) but this network needs \(32, 4\)"):
        load_checkpoint(wide, path)
    with pytest.raises(CheckpointError, match="was saved for spaces"):
        load_checkpoint(PPO("MlpPolicy", "Acrobot-v1", device="cpu", n_steps=32, n_envs=2, batch_size=32, **TINY), path)
    model.save(tmp_path / "model")
    with pytest.raises(CheckpointError, match="is a saved model, not a training checkpoint"):
        load_checkpoint(model, tmp_path / "model.safetensors")


def test_gymnasium_backed_runs_resume_with_a_warning_that_it_is_not_exact(tmp_path):
    run, _, _ = train_run(
        "a2c",
        "CartPole-v1",
        total_timesteps=160,
        device="cpu",
        out=tmp_path / "run",
        progress_bar=False,
        eval_episodes=0,
        env_backend="gymnasium",
        checkpoint_every=80,
        overrides=["n_steps=8", "n_envs=2", "normalize_reward=true", "policy_kwargs={net_arch: [8]}"],
    )
    with pytest.warns(UserWarning, match="whose env state cannot be saved"):
        _, model, _ = resume_run(run, total_timesteps=320, device="cpu", progress_bar=False, eval_episodes=0)
    assert model.num_timesteps == 320
    _, rows = read_metrics(run / "metrics.csv")
    steps = [int(row[0]) for row in rows]
    assert steps == sorted(set(steps)) and steps[-1] == 320
