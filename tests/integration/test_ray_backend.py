"""`--backend ray`: bad input ends in one sentence; rollouts merge; checkpoints resume on Ray.

Ray comes with the test install (the Makefile installs the pgrl[ray] extra), so nothing here is
skipped when it is missing: a missing Ray fails these tests.  The checkpoint test starts Ray
inside the run, as `pgrl train --backend ray` without --address does, and checks that it is shut
down afterwards.
"""

from __future__ import annotations

import csv
import json
import socket
import sys
import time

import gymnasium as gym
import pytest
import torch

from pgrl import cli, runs
from pgrl.distributed import RayOptions, concat_rollouts
from pgrl.distributed.workers import merge_moments
from pgrl.envs.normalize import RunningMeanStd
from pgrl.rollout.storage import Rollout


def _train(capsys, *args: str) -> tuple[int, str]:
    code = cli.main(["train", *args])
    return code, capsys.readouterr().err.strip()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ppo", "CartPole-v1", "--backend", "ray", "--num-workers", "0"],
         "pgrl: error: --num-workers must be at least 1, got 0"),
        (["ppo", "CartPole-v1", "--backend", "ray", "--num-workers", "2", "--envs-per-worker", "0"],
         "pgrl: error: --envs-per-worker must be at least 1, got 0"),
        (["ppo", "CartPole-v1", "--num-workers", "2"],
         "pgrl: error: --num-workers only applies to --backend ray; add --backend ray or drop it"),
        (["ppo", "CartPole-v1", "--backend", "ray", "--address", "headnode"],
         "pgrl: error: --address must be HOST:PORT of a Ray head (e.g. 127.0.0.1:6379), got 'headnode'"),
        (["actor_critic", "CartPole-v1", "--backend", "ray"],
         "pgrl: error: actor_critic cannot run on --backend ray (it supports reinforce, vpg, a2c, a3c, ppo, trpo); "
         "use a2c (n-step batches) instead"),
        (["ppo", "CartPole-v1", "--backend", "ray", "--max-staleness", "3"],
         "pgrl: error: --max-staleness applies to a3c only, not ppo; drop it"),
    ],
)
def test_bad_ray_flags_end_in_one_sentence(capsys, tmp_path, args, message):
    code, err = _train(capsys, *args, "--out", str(tmp_path / "run"))
    assert (code, err) == (2, message)
    assert not (tmp_path / "run").exists()


def test_unreachable_address_fails_fast_and_names_it(capsys, tmp_path):
    port = _closed_port()
    started = time.monotonic()
    code, err = _train(capsys, "ppo", "CartPole-v1", "--backend", "ray", "--address", f"127.0.0.1:{port}",
                       "--out", str(tmp_path / "run"))
    assert code == 2
    assert err == (f"pgrl: error: cannot reach a Ray cluster at 127.0.0.1:{port} (connection refused); "
                   f"start one there with `ray start --head --port={port}` or fix --address")
    assert time.monotonic() - started < 10.0
    assert not (tmp_path / "run").exists()


def test_missing_ray_names_the_extra(capsys, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now raises ImportError
    code, err = _train(capsys, "ppo", "CartPole-v1", "--backend", "ray", "--out", str(tmp_path / "run"))
    assert (code, err) == (2, 'pgrl: error: --backend ray needs Ray, which is not installed; '
                              'install it with pip install "pgrl[ray]"')


def _part(n_steps: int, num_envs: int, first: float, returns: list[float]) -> Rollout:
    part = Rollout.allocate(n_steps, num_envs, gym.spaces.Box(-1, 1, (3,)), (), torch.int64, torch.device("cpu"))
    part.obs.fill_(first)
    part.rewards.fill_(first)
    part.terminated[-1] = True
    part.episode_returns, part.episode_lengths = returns, [n_steps] * len(returns)
    return part


def test_worker_rollouts_concatenate_along_the_env_axis_with_padding():
    merged = concat_rollouts([_part(4, 2, 1.0, [4.0, 4.0]), _part(6, 3, 2.0, [6.0])], torch.device("cpu"))
    assert (merged.n_steps, merged.num_envs) == (6, 5)
    assert merged.obs.shape == (6, 5, 3)
    assert torch.equal(merged.rewards[:4, :2], torch.ones(4, 2))
    assert torch.equal(merged.rewards[:, 2:], torch.full((6, 3), 2.0))
    # the shorter worker's missing steps are invalid, unrewarded and end nothing
    assert not merged.valid[4:, :2].any() and merged.valid[:4, :2].all() and merged.valid[:, 2:].all()
    assert not merged.rewards[4:, :2].any() and not merged.dones[4:, :2].any()
    assert merged.terminated[3, :2].all() and merged.terminated[5, 2:].all()
    assert merged.episode_returns == [4.0, 4.0, 6.0] and merged.episode_lengths == [4, 4, 6]


def test_merged_worker_moments_equal_the_statistics_of_all_observations():
    batches = [torch.randn(50, 3) * 2 + 1, torch.randn(70, 3) - 4]
    reference, merged = RunningMeanStd((3,)), RunningMeanStd((3,))
    reference.update(torch.cat(batches))
    reference_two_step = RunningMeanStd((3,))
    for batch in batches:
        reference_two_step.update(batch)
        seen = RunningMeanStd((3,), epsilon=0.0)
        seen.update(batch)
        merge_moments(merged, seen.mean, seen.var, seen.count)
    for key in ("mean", "var", "count"):
        torch.testing.assert_close(getattr(merged, key), getattr(reference_two_step, key))
    torch.testing.assert_close(merged.mean, reference.mean, rtol=1e-6, atol=1e-6)


def _rows(run_dir) -> list[dict[str, str]]:
    with (run_dir / "metrics.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.slow  # about 45 s (starts and stops Ray): `make test-long` (CI) runs it
def test_checkpoint_and_resume_on_a_ray_started_inside_the_run(tmp_path):
    import ray

    run_dir = tmp_path / "run"
    options = RayOptions(num_workers=2)
    _, model, _ = runs.train_run(
        "ppo", "CartPole-v1", seed=1, total_timesteps=2048, out=run_dir, progress_bar=False, eval_episodes=0,
        checkpoint_every=1024, overrides=["n_envs=4", "batch_size=64", "n_epochs=2", "normalize=true"],
        ray_options=options,
    )
    assert not ray.is_initialized()  # started for the run, shut down with it
    assert model.num_timesteps == 2048
    assert float(model.obs_normalizer.stats.count) > 2048  # workers' observation moments reached the learner
    saved = json.loads((run_dir / "config.json").read_text())
    assert saved["ray"] == {"backend": "ray", "num_workers": 2, "envs_per_worker": None, "address": None,
                            "max_staleness": None}
    assert saved["config"]["n_envs"] == 4  # two workers x two envs
    rows = _rows(run_dir)
    assert rows[-1]["ray/workers"] == "2.0" and rows[-1]["ray/restarts"] == "0.0"

    _, resumed, _ = runs.resume_run(run_dir, total_timesteps=3072, progress_bar=False, eval_episodes=0)
    assert not ray.is_initialized()
    assert resumed.num_timesteps == 3072
    assert int(_rows(run_dir)[-1]["step"]) == 3072


@pytest.mark.slow  # about 45 s (starts and stops Ray): `make test-long` (CI) runs it
def test_episode_collection_and_a3c_staleness_bound_on_ray(tmp_path):
    """VPG gathers whole episodes from two actors; a3c with max_staleness 0 drops every stale gradient."""
    import pgrl
    from pgrl.distributed import build_model, learn_on_ray, ray_session

    with ray_session(num_cpus=2) as ray:
        vpg_options = RayOptions(num_workers=2, envs_per_worker=2)
        vpg = build_model("vpg", "CartPole-v1", vpg_options, seed=0)
        assert vpg.config.n_envs == 4 and vpg.env.num_envs == 1  # the learner steps no envs itself
        learn_on_ray(vpg, vpg_options, 600, log_dir=tmp_path / "vpg")
        assert ray.is_initialized()  # a Ray this process started is left to it
        rows = _rows(tmp_path / "vpg")
        assert vpg.num_timesteps >= 600 and int(rows[-1]["rollout/episodes"]) >= 4 * len(rows)

        a3c_options = RayOptions(num_workers=2, max_staleness=0)
        a3c = build_model("a3c", "CartPole-v1", a3c_options, seed=0, n_envs=2, n_steps=8)
        learn_on_ray(a3c, a3c_options, 3000, log_dir=tmp_path / "a3c")
        a3c_rows = _rows(tmp_path / "a3c")
        last = a3c_rows[-1]
        # only fresh gradients were applied (a row whose gradients were all dropped logs no staleness)
        applied = [float(r["async/staleness_max"]) for r in a3c_rows if r["async/staleness_max"] != ""]
        assert applied and set(applied) == {0.0}
        assert a3c.async_stats["dropped"] > 0 and float(last["async/dropped"]) == a3c.async_stats["dropped"]
        # every gradient that arrived (2 envs x 8 steps each) was either applied or dropped
        assert a3c.async_stats["version"] + a3c.async_stats["dropped"] == a3c.num_timesteps // 16
        assert isinstance(a3c, pgrl.A3C) and a3c.num_timesteps >= 3000
