"""The command line: a real training run, evaluation, and one clear sentence for each bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from pgrl.cli import main


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_train_writes_a_complete_run_folder_and_eval_reads_it(capsys, tmp_path):
    run = tmp_path / "run"
    code, out, err = run_cli(
        capsys,
        "train",
        "a2c",
        "CartPole-v1",
        "--total-timesteps",
        "2000",
        "--out",
        str(run),
        "--eval-episodes",
        "3",
        "--no-progress",
        "--set",
        "n_steps=8",
    )
    assert code == 0, err
    for name in ("config.json", "metrics.csv", "learning_curve.png", "model.safetensors", "summary.json"):
        assert (run / name).is_file(), name
    assert list(run.glob("events.out.tfevents.*")), "TensorBoard events missing"
    config = json.loads((run / "config.json").read_text())
    assert config["algo"] == "a2c" and config["config"]["n_steps"] == 8
    summary = json.loads((run / "summary.json").read_text())
    assert summary["num_timesteps"] >= 2000 and summary["eval_episodes"] == 3
    assert f"run folder: {run}" in out and "greedy return over 3 episodes" in out
    header = (run / "metrics.csv").read_text().splitlines()[0].split(",")
    for key in ("step", "loss/policy", "loss/value", "loss/entropy", "rollout/ep_return_mean", "time/sps"):
        assert key in header

    code, out, err = run_cli(capsys, "eval", str(run), "--episodes", "4", "--stochastic")
    assert code == 0, err
    assert "a2c on CartPole-v1: stochastic return over 4 episodes" in out


def test_train_refuses_to_overwrite_a_run_folder(capsys, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "keep.txt").write_text("data")
    code, _, err = run_cli(
        capsys, "train", "ppo", "CartPole-v1", "--out", str(run), "--total-timesteps", "100"
    )
    assert code == 2 and "already exists" in err
    assert (run / "keep.txt").read_text() == "data"


def _bad_yaml(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("n_steps: [1, 2\n  gamma: :\n")
    return str(path)


BAD_INPUTS = [
    (["train", "ppo", "CartPole-v9"], "unknown environment id 'CartPole-v9'; did you mean"),
    (["train", "dqn", "CartPole-v1"], "unknown algorithm 'dqn'; choose one of"),
    (["train", "ppo", "CartPole-v1", "--set", "n_stepz=8"], "unknown hyperparameter 'n_stepz' for ppo"),
    (["train", "ppo", "CartPole-v1", "--set", "n_steps=abc"], "hyperparameter 'n_steps' for ppo is invalid"),
    (["train", "ppo", "CartPole-v1", "--set", "gamma=1.5"], "hyperparameter 'gamma' for ppo is invalid"),
    (["train", "ppo", "CartPole-v1", "--set", "n_steps"], "--set expects key=value"),
    (["train", "ppo", "CartPole-v1", "--config", "BADYAML"], "is not valid YAML"),
    (
        ["train", "ppo", "CartPole-v1", "--config", "/nonexistent/c.yaml"],
        "config file /nonexistent/c.yaml does not exist",
    ),
    (
        ["train", "a2c", "pgrl-test/TupleAction-v0"],
        "handles Discrete, Box, MultiDiscrete and MultiBinary action spaces, not Tuple",
    ),
    (["train", "ppo", "CartPole-v1", "--preset", "nope"], "no preset 'nope' for ppo on CartPole-v1"),
    (
        ["train", "ppo", "CartPole-v1", "--total-timesteps", "-5"],
        "--total-timesteps must be a positive whole number",
    ),
    (["train", "ppo", "CartPole-v1", "--set", "batch_size=7"], "is not a multiple of batch_size 7"),
    (["eval", "/nonexistent/run"], "run folder or model file /nonexistent/run does not exist"),
]


@pytest.mark.parametrize(("argv", "message"), BAD_INPUTS, ids=[" ".join(a[:4]) for a, _ in BAD_INPUTS])
def test_bad_input_gives_one_sentence_and_exit_2(capsys, tmp_path, argv, message):
    argv = [
        str(tmp_path / "out") if a == "OUT" else _bad_yaml(tmp_path) if a == "BADYAML" else a for a in argv
    ]
    if argv[0] == "train":
        argv += ["--out", str(tmp_path / "run"), "--no-progress"]
    code, out, err = run_cli(capsys, *argv)
    assert code == 2
    assert message in err
    assert "Traceback" not in err
    lines = [line for line in err.strip().splitlines() if line]
    assert len(lines) == 1 and lines[0].startswith("pgrl: error: ")
    assert not (tmp_path / "run" / "model.safetensors").exists()


def test_eval_of_a_corrupt_model_is_a_clear_error(capsys, tmp_path):
    path = tmp_path / "model.safetensors"
    path.write_bytes(b"\x00\x01 not a model at all")
    code, _, err = run_cli(capsys, "eval", str(path))
    assert code == 2 and "is not a readable pgrl model" in err


def test_real_process_exit_code_and_no_traceback(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "pgrl.cli", "train", "ppo", "NoSuchEnv-v0", "--out", str(tmp_path / "r")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("pgrl: error: unknown environment id 'NoSuchEnv-v0'")
    assert "Traceback" not in proc.stderr
