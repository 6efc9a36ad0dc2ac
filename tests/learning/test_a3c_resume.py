"""A3C survives SIGKILL: killed five times and resumed each time, the run still solves CartPole-v1.

``pgrl train a3c CartPole-v1 --checkpoint-every 10000`` runs in a subprocess.  KILLS times, once
a checkpoint newer than the last kill's exists, the test waits a random moment (seeded
``random.Random``) and SIGKILLs the process, then checks that

- every checkpoint file written so far loads (header and tensors, and the newest one into a model),
- no process of the run remains within WORKERS_GONE_S (workers poll ``os.getppid()``; the
  processes are found by a marker variable in their environment, which children inherit),

and resumes with ``pgrl train --resume RUN_DIR``.  The last resume runs to its end (target_return
or the budget); the final model must reach a greedy 100-episode mean >= 475 on Gymnasium's
CartPole-v1.

Retry budget: A3C's curve depends on how the OS interleaves the workers (see
tests/learning/test_a3c_learning.py), so the whole kill-and-resume sequence gets up to ATTEMPTS
tries with seeds 0, 1, ...; every check except the final return must hold on every try.
ATTEMPTS = 3: the default preset solved 8 of 8 plain runs (5 Hogwild, 3 on Ray; sweeps in
tests/learning/test_a3c_learning.py and test_ray_learning.py), and its gae variant missed 1 of 5,
so at a per-try miss rate of 0.2 all three tries miss with probability 0.8%.  The kill-and-resume
sequence itself was run once per test here (it solved at the first try), not swept over seeds.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

import pgrl
from pgrl.checkpoint import checkpoint_files, load_checkpoint, read_model_file

BIN = Path(sys.executable).parent
ATTEMPTS = 3
KILLS = 5
CHECKPOINT_EVERY = 10_000
THRESHOLD = 475.0
WORKERS_GONE_S = 10.0
MARKER = "PGRL_TEST_RUN"


def processes(match) -> list[str]:
    """"PID: command line" of live (non-zombie) processes for which ``match(pid, environ, cmdline)`` holds."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().split(") ")[-1][:1]
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if state != "Z" and cmdline and match(entry.name, environ, cmdline):
            found.append(f"{entry.name}: {cmdline[:120]}")
    return found


def run_processes(marker: str) -> list[str]:
    """Processes whose environment holds ``MARKER=marker``."""
    needle = f"{MARKER}={marker}".encode()
    return processes(lambda pid, environ, cmdline: needle in environ)


def assert_gone(marker: str) -> None:
    deadline = time.monotonic() + WORKERS_GONE_S
    while run_processes(marker) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = run_processes(marker)
    assert not left, f"processes of the killed run are still alive after {WORKERS_GONE_S} s:\n" + "\n".join(left)


def assert_checkpoints_load(run_dir: Path, probe) -> int:
    """Every checkpoint file reads; the newest loads into ``probe``.  Returns the newest step."""
    files = checkpoint_files(run_dir)
    assert files, f"{run_dir} has no checkpoint"
    for _, path in files:
        header, tensors = read_model_file(path)
        assert header["kind"] == "checkpoint" and any(key.startswith("ckpt.optim.") for key in tensors)
    load_checkpoint(probe, files[-1][1])
    return files[-1][0]


def start(args: list[str], marker: str, log: Path, extra_env: dict[str, str] | None = None) -> subprocess.Popen:
    env = {**os.environ, MARKER: marker, **(extra_env or {})}
    with log.open("a") as handle:
        return subprocess.Popen([str(BIN / "pgrl"), "--threads", "1", "train", *args, "--no-progress"],
                                stdout=handle, stderr=subprocess.STDOUT, env=env, start_new_session=True)


def wait_for_checkpoint_after(proc: subprocess.Popen, run_dir: Path, step: int, timeout: float = 120.0) -> bool:
    """True once a checkpoint newer than ``step`` exists; False if the process ended first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        files = checkpoint_files(run_dir)
        if files and files[-1][0] > step:
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.1)
    raise AssertionError(f"no new checkpoint in {run_dir} within {timeout:.0f} s")


def kill_and_resume(run_dir: Path, first_args: list[str], log: Path, rng: random.Random, probe,
                    extra_env: dict[str, str] | None = None, kills: int = KILLS,
                    resume_args: tuple[str, ...] = (), before_kill=None, after_kill=None) -> list[str]:
    """Start the run, SIGKILL it ``kills`` times (each after a new checkpoint) and resume it; wait for the end.

    Returns the kill moments as text.  Shared with tests/learning/test_a3c_ray_resume.py.
    """
    marker = uuid.uuid4().hex
    proc = start(first_args, marker, log, extra_env)
    moments, newest = [], -1
    try:
        for kill in range(kills):
            if not wait_for_checkpoint_after(proc, run_dir, newest):
                break  # the run ended (target_return) before this kill
            delay = rng.uniform(0.0, 1.5)
            time.sleep(delay)
            if proc.poll() is not None:
                break
            if before_kill is not None:
                before_kill()
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(30)
            assert_gone(marker)
            if after_kill is not None:
                after_kill()
            newest = assert_checkpoints_load(run_dir, probe)
            moments.append(f"kill {kill + 1}: {delay:.2f} s after a checkpoint, resumed from step {newest}")
            marker = uuid.uuid4().hex
            proc = start(["--resume", str(run_dir), *resume_args], marker, log, extra_env)
        proc.wait(600)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)
    assert proc.returncode == 0, log.read_text()[-3000:]
    assert_gone(marker)
    assert_checkpoints_load(run_dir, probe)
    return moments


def greedy_attempt(run_dir: Path, seed: int, started: float, moments: list[str]) -> tuple[float, str]:
    """The run's final model: greedy 100-episode mean on Gymnasium's CartPole-v1, and a line for the report."""
    model = pgrl.A3C.load(run_dir / "model.safetensors")
    mean, std = pgrl.evaluate_policy(model, "CartPole-v1", 100, backend="gymnasium")
    line = (f"seed {seed}: {mean:.1f} ± {std:.1f} after {model.num_timesteps} steps in "
            f"{time.monotonic() - started:.0f} s ({'; '.join(moments)})")
    print(line)
    return mean, line


@pytest.mark.learning
def test_a3c_killed_five_times_and_resumed_solves_cartpole(tmp_path):
    attempts = []
    for seed in range(ATTEMPTS):
        started = time.monotonic()
        run_dir, log = tmp_path / f"a3c-{seed}", tmp_path / f"a3c-{seed}.log"
        probe = pgrl.A3C("MlpPolicy", "CartPole-v1", seed=seed)
        args = ["a3c", "CartPole-v1", "--seed", str(seed), "--checkpoint-every", str(CHECKPOINT_EVERY),
                "--keep-checkpoints", "1000", "--eval-episodes", "0", "--out", str(run_dir)]
        moments = kill_and_resume(run_dir, args, log, random.Random(seed), probe)
        assert len(moments) >= 3, f"the run ended after only {len(moments)} kills: {moments}"
        mean, line = greedy_attempt(run_dir, seed, started, moments)
        attempts.append(line)
        if mean >= THRESHOLD:
            return
    pytest.fail(f"a3c killed {KILLS} times did not reach {THRESHOLD} in {ATTEMPTS} attempts: " + " | ".join(attempts))
