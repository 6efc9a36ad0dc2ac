"""The benchmark scripts run end to end on tiny budgets, Stable-Baselines3 side included.

`make test` installs the pgrl[bench] extra (Stable-Baselines3), so this runs in CI; the timed
comparisons themselves live in `make bench`, never in tests.
"""

from __future__ import annotations

import pgrl
from benchmarks import sb3_runner
from benchmarks.common import SolveResult, train_to_threshold
from benchmarks.speed import solve_row


def test_sb3_side_trains_and_is_evaluated_greedily():
    seconds = sb3_runner.train_seconds("ppo", seed=0, total=512)
    assert seconds > 0
    result = sb3_runner.time_to_solve("a2c", seed=0, budget=400, eval_every=200, threshold=475.0)
    assert isinstance(result, SolveResult) and not result.solved  # 400 steps cannot solve CartPole
    assert 0 < result.final_return < 475 and result.steps == 400


def test_pgrl_side_stops_at_the_threshold_and_reports_the_solve():
    model = pgrl.PPO("MlpPolicy", "CartPole-v1", seed=0, n_envs=4, n_steps=16, batch_size=64, n_epochs=1)
    solved = train_to_threshold(model, "CartPole-v1", threshold=0.0, budget=5000, eval_every=128, n_eval=5)
    assert solved.solved and solved.steps < 5000  # a threshold of 0 is met at the first check
    assert model.num_timesteps == solved.steps and solved.seconds > 0
    model = pgrl.PPO("MlpPolicy", "CartPole-v1", seed=0, n_envs=4, n_steps=16, batch_size=64, n_epochs=1)
    unsolved = train_to_threshold(model, "CartPole-v1", threshold=1e9, budget=512, eval_every=128, n_eval=5)
    assert not unsolved.solved and unsolved.steps == model.num_timesteps >= 512


def test_solve_rows_report_medians_of_solved_seeds_only():
    pgrl_results = [SolveResult(True, 100, 1.0, 500.0), SolveResult(False, 900, 9.0, 100.0),
                    SolveResult(True, 300, 3.0, 480.0)]
    sb3_results = [SolveResult(True, 400, 4.0, 500.0)]
    row = solve_row("x", pgrl_results, sb3_results)
    assert row == "| x | 2/3 | 2.00 s (200 steps) | 1/1 | 4.00 s (400 steps) | 2.0x |"


def test_masking_and_recurrent_benchmarks_run_both_libraries(capsys):
    from benchmarks import masking, recurrent

    masking.main(["--steps", "512", "--repeats", "1", "--seeds", "1", "--budget", "2048"])
    recurrent.main(["--steps", "256", "--warmup", "256", "--repeats", "1", "--seeds", "1", "--budget", "1024"])
    out = capsys.readouterr().out
    assert "pgrl / sb3-contrib steps/s" in out
    for row in ("| pgrl |", "| pgrl (gymnasium envs) |", "| sb3-contrib |"):
        assert row in out


def test_jax_comparison_runs_pgrl_and_sb3_on_the_same_schedule(monkeypatch, capsys):
    """bench-jax's pgrl and SB3 workers train the same number of steps of PureJaxRL's config (the
    JAX side needs .venv-jax, which only `make bench-jax` creates); the table reads their results."""
    from benchmarks import jax_compare, jax_worker

    monkeypatch.setitem(jax_worker.CONFIGS, "default", {"num_envs": 4, "total_timesteps": 1024})
    ours, theirs = jax_compare.pgrl_worker("default", 0, 1), jax_compare.sb3_worker("default", 0)
    assert ours["steps"] == theirs["steps"] == 1024  # 2 iterations of 4 envs x 128 steps
    assert ours["train_s"] > 0 and theirs["train_s"] > 0 and 8 <= ours["return"] <= 500
    rejax = {"train_s": ours["train_s"] / 3, "whole_s": 1.0, "compile_s": 2.0, "steps": 1024, "return": 9.0}
    jax_compare._table("default", {"rejax": [rejax], "pgrl (1 thread)": [{**ours, "whole_s": 2.0}]})
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("| pgrl (1 thread) |"))
    assert "| 3.0x | 2.0x |" in row  # training and whole-process ratios against rejax's


def test_cli_comparison_times_both_whole_processes(capsys):
    """bench-cli: `pgrl train` and the SB3 worker each run as a process on the same budget; the table
    gives both medians and their ratio."""
    from benchmarks import cli_compare

    cli_compare.main(["--repeats", "1", "--timesteps", "1024"])
    out = capsys.readouterr().out
    assert "| `pgrl train ppo CartPole-v1` |" in out and "| SB3 2.9.2, rl-zoo's settings |" in out
    ratio = float(out.split("SB3 / pgrl: ")[1].split("x")[0])
    assert ratio > 0
