"""`pgrl tune`: a small study's files, pruned trials in the CSV, the best trial as a config, one-sentence errors."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml

from pgrl.cli import main
from pgrl.runs import train_run
from pgrl.tune import STUDY_NAME

# small and quick: the CartPole-v1 preset's 8 envs x 32 steps, 4 epochs; only the learning rate is tuned
FIXED = "n_epochs: 4\npolicy_kwargs.net_arch: [64, 64]\n" + "".join(
    f"{key}: null\n" for key in ("batch_size", "n_steps", "gamma", "gae_lambda", "ent_coef", "clip_range",
                                  "max_grad_norm", "policy_kwargs.activation_fn"))
SPACE = FIXED + "learning_rate: {choices: [0.003, 0.0]}\n"
ROOT = Path(__file__).resolve().parents[2]


def test_study_files_pruned_trials_and_best_config(tmp_path):
    space = tmp_path / "space.yaml"
    space.write_text(SPACE)
    storage = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    # a learning trial first, then two that cannot learn (learning rate 0; the untrained greedy policy of seed 0
    # scores about 30): the median pruner stops them at their first evaluation
    study = optuna.create_study(study_name=STUDY_NAME, storage=storage, direction="maximize")
    for lr in (0.003, 0.0, 0.0):
        study.enqueue_trial({"learning_rate": lr})
    out = tmp_path / "tune"
    assert main(["tune", "ppo", "CartPole-v1", "--trials", "3", "--total-timesteps", "4096", "--n-evaluations", "2",
                 "--eval-episodes", "3", "--n-startup-trials", "1", "--search-space", str(space),
                 "--storage", storage, "-o", str(out)]) == 0
    with (out / "trials.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    stored = optuna.load_study(study_name=STUDY_NAME, storage=storage).trials
    assert len(rows) == len(stored) == 3
    assert [r["state"] for r in rows] == [t.state.name for t in stored]
    assert sum(r["state"] == "PRUNED" for r in rows) == 2, rows
    assert [float(r["learning_rate"]) for r in rows] == [0.003, 0.0, 0.0]
    best = yaml.safe_load((out / "best.yaml").read_text())
    assert best["learning_rate"] == 0.003 and best["n_epochs"] == 4 and best["policy_kwargs"]["net_arch"] == [64, 64]
    assert best["n_envs"] == 8 and best["n_timesteps"] == 4096  # the preset's, and the trial's budget
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 1  # the history; importances need two varied complete trials
    assert "http://" not in page and "https://" not in page and "<script" not in page
    _, model, _ = train_run("ppo", "CartPole-v1", total_timesteps=256, config_file=out / "best.yaml",
                            out=tmp_path / "run", progress_bar=False, eval_episodes=0)
    assert model.config.learning_rate == 0.003 and model.config.n_epochs == 4


def test_tune_errors_are_one_sentence(tmp_path, capsys):
    assert main(["tune", "vpg", "CartPole-v1", "-o", str(tmp_path / "a")]) == 2
    assert "no default search space for vpg" in capsys.readouterr().err
    assert main(["tune", "--resume", str(tmp_path / "missing")]) == 2
    assert "has no tune.json" in capsys.readouterr().err
    assert main(["tune", "ppo", "CartPole-v1", "--storage", "postgresql://x", "-o", str(tmp_path / "b")]) == 2
    assert "--storage takes sqlite:///FILE" in capsys.readouterr().err


def _finished(db: Path) -> dict[int, tuple[str, float | None, dict]]:
    trials = optuna.load_study(study_name=STUDY_NAME, storage=f"sqlite:///{db}").trials
    return {t.number: (t.state.name, t.value, t.params) for t in trials if t.state.name in ("COMPLETE", "PRUNED")}


def test_sigkill_then_resume_keeps_every_finished_trial(tmp_path):
    space = tmp_path / "space.yaml"
    space.write_text(FIXED + "learning_rate: {float: [0.0001, 0.01], log: true}\n")
    out, db = tmp_path / "tune", tmp_path / "tune" / "study.db"
    command = [sys.executable, "-m", "pgrl.cli", "tune", "ppo", "CartPole-v1", "--trials", "6",
               "--total-timesteps", "3072", "--n-evaluations", "2", "--eval-episodes", "3", "--search-space",
               str(space), "--pruner", "none", "-o", str(out)]
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline, before = time.monotonic() + 300, {}
    try:
        while time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.5)
            if db.exists():
                try:
                    before = _finished(db)
                except Exception:  # the study table not created yet
                    continue
                if len(before) >= 2:
                    break
        assert process.poll() is None, process.stderr.read().decode()
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    before = _finished(db)  # what the killed process had committed
    assert 2 <= len(before) < 6
    result = subprocess.run([sys.executable, "-m", "pgrl.cli", "tune", "--resume", str(out)], env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    after = _finished(db)
    assert len(after) == 6
    assert all(after[number] == trial for number, trial in before.items())  # kept as they were
    with (out / "trials.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert sum(r["state"] in ("COMPLETE", "PRUNED") for r in rows) == 6
    assert all(r["error"].startswith("interrupted") for r in rows if r["state"] == "FAIL")


@pytest.mark.slow
def test_parallel_trials_in_processes_are_reproducible(tmp_path):
    """--n-jobs 2: two processes share the study; trials of the same values give the same return."""
    space = tmp_path / "space.yaml"
    space.write_text(SPACE)
    out = tmp_path / "tune"
    assert main(["tune", "ppo", "CartPole-v1", "--trials", "4", "--n-jobs", "2", "--total-timesteps", "3072",
                 "--n-evaluations", "2", "--eval-episodes", "3", "--pruner", "none", "--sampler", "random",
                 "--search-space", str(space), "-o", str(out)]) == 0
    with (out / "trials.csv").open(newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r["state"] == "COMPLETE"]
    assert 4 <= len(rows) <= 5  # one process may start a trial while the other finishes the fourth
    by_rate: dict[str, set[str]] = {}
    for row in rows:
        by_rate.setdefault(row["learning_rate"], set()).add(row["value"])
    assert all(len(values) == 1 for values in by_rate.values()), rows
    assert any(len([r for r in rows if r["learning_rate"] == rate]) > 1 for rate in by_rate), rows
