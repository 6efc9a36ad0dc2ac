"""A 12-trial `pgrl tune` study finds a PPO configuration that solves CartPole-v1, and best.yaml reproduces it."""

from __future__ import annotations

import csv
import time

import pytest

from pgrl.cli import main
from pgrl.runs import train_run

# rl-zoo's PPO space (search_spaces.yaml), with n_steps, batch_size and n_epochs held to the
# quick end of its ranges so that a trial of 30,000 steps takes seconds on one core
SPACE = ("n_steps: {int: [3, 7], transform: pow2}\nbatch_size: {int: [5, 8], transform: pow2}\n"
         "n_epochs: {choices: [5, 10]}\n")


@pytest.mark.learning
@pytest.mark.parametrize("seed", [0])
def test_twelve_trials_solve_cartpole(tmp_path, seed):
    space = tmp_path / "space.yaml"
    space.write_text(SPACE)
    out = tmp_path / "tune"
    started = time.perf_counter()
    assert main(["tune", "ppo", "CartPole-v1", "--trials", "12", "--total-timesteps", "30000", "--n-evaluations", "3",
                 "--eval-episodes", "10", "--search-space", str(space), "--seed", str(seed), "-o", str(out)]) == 0
    with (out / "trials.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 12
    best = max(float(r["value"]) for r in rows if r["state"] == "COMPLETE")
    assert best >= 475, rows
    _, _, summary = train_run("ppo", "CartPole-v1", seed=seed, config_file=out / "best.yaml", out=tmp_path / "run",
                              progress_bar=False, eval_episodes=20)
    print(f"study: {time.perf_counter() - started:.0f} s, best trial {best:.1f}, "
          f"retrained greedy {summary['eval_return_mean']:.1f}; pruned {sum(r['state'] == 'PRUNED' for r in rows)}")
    assert summary["eval_return_mean"] >= 475, summary
