"""PPO and A3C on a Ray cluster solve CartPole-v1; a killed rollout actor is restarted, not lost.

The module starts a Ray head on loopback as CI would (`ray start --head` with the venv's ray, two
CPUs, no dashboard), every run joins it with --address, and at the end `ray stop --force` must
leave no Ray process (gcs_server, raylet, workers) behind.

Solved means a greedy 100-episode mean >= 475 on Gymnasium's CartPole-v1 after training.
PPO uses its default preset (8 envs: 2 workers x 4, 100k steps, seed 0) and gets one attempt: its
workers and learner are seeded and merged in worker order.  Swept with that test's exact setup
(`pgrl --threads 1 train ppo CartPole-v1 --backend ray --num-workers 2 --address HEAD --seed S
--eval-episodes 100`, the head as in ``ray_head``; AMD EPYC 2-core machine, 2026-12; seconds:
training as the CLI reports it / the whole command)::

    seed   greedy 100 episodes   steps     seconds
    0      500.0 ± 0.0           100,096   59 / 72
    1      500.0 ± 0.0           100,096   65 / 79
    2      500.0 ± 0.0           100,096   68 / 81
    3      500.0 ± 0.0           100,096   76 / 94
    4      500.0 ± 0.0           100,096   78 / 95

5/5 at the maximum 500 with std 0.0 (every greedy episode runs to the time limit), as the
single-process ppo row of tests/learning/test_cartpole.py: a margin of 25 over 475 on every seed,
so one seed (0) at 475 stays; another CPU's rounding would have to cost a seed that solves with
std 0.0 more than 25 points, which none of the five came near.

A3C's gradients arrive in an order the scheduler decides, so as in
tests/learning/test_a3c_learning.py a seed labels one draw, not a curve.  Swept with that test's
exact setup (the same command with ``a3c``, its default preset; seeds 0-2 only, for lack of time;
same machine and date)::

    seed   greedy 100 episodes   steps     seconds
    0      500.0 ± 0.0           151,680   85 / 95
    1      500.0 ± 0.0           171,008   86 / 95
    2      500.0 ± 0.0           120,832   61 / 70

3/3 solved at 500.0, as the default preset's Hogwild runs (5/5 in test_a3c_learning.py, 8/8 in
the presets file); but the same algorithm with GAE missed 1 of 5 there (181.6 after the whole
budget), and three runs cannot exclude a per-attempt miss rate of 0.2.  Retry budget: up to
ATTEMPTS = 4 runs with seeds 0, 1, 2, 3; at a miss rate of 0.2 all four miss with probability
0.16%, at 0.3 with 0.8%, while a broken A3C still fails.  Cost: one run (70-95 s) when seed 0
solves, as every run here did.

The killed-actor run is PPO's with worker 1 SIGKILLed once past 20k steps: the restarted actor
starts fresh episodes and fresh reward statistics at a moment a timer decides, so its curve is a
different draw from the plain run's and not always solved at the end of the budget.  Swept with
this test's exact setup (seeds 0-4, 1 torch thread, 2 Ray workers, AMD EPYC 2-core machine,
2026-11; seconds on a loaded machine, about 2.5x the idle figure)::

    seed   greedy 100 episodes   steps     seconds   restarts
    0      500.0 ± 0.0           100,096   87        1
    1      500.0 ± 0.0           100,096   92        1
    2      431.2 ± 17.5          100,096   91        1
    3      500.0 ± 0.0           100,096   94        1
    4      500.0 ± 0.0           100,096   113       1
    (seed 0 on an Intel Xeon with AVX-512: 392.6, the failure that made this a retry test)

So one attempt misses 475 about one time in four or five (1 of 5 here, plus seed 0 elsewhere).
Retry budget: up to KILLED_ATTEMPTS = 4 attempts with seeds 0, 1, 2, 3; at a per-attempt miss
rate of 0.3 all four miss with probability 0.8%, at 0.2 with 0.16%, and the expected cost is
about 1.3 runs.  The restart checks (the warning, 100,096 steps, one restart) hold on every
attempt; only the return needs one.  The threshold stays 475 (a solved CartPole), not one
lowered to a seed's score.
"""

from __future__ import annotations

import csv
import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from pgrl import runs
from pgrl.distributed import RayOptions, WorkerRestartWarning, ray_session

THRESHOLD = 475.0
ATTEMPTS = 4  # A3C on Ray: seeds 0-3 (see the module docstring)
KILLED_ATTEMPTS = 4
BIN = Path(sys.executable).parent
RAY_PROCESS_NAMES = ("gcs_server", "raylet", "default_worker.py", "ray::", "dashboard", "log_monitor.py",
                     "monitor.py", "runtime_env")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ray_processes(port: int) -> list[str]:
    """Processes of this cluster: any that names its port, and every Ray daemon or worker."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().split(") ")[-1][:1]
        except OSError:
            continue
        if state == "Z" or not cmdline:
            continue
        if f":{port}" in cmdline or f"={port}" in cmdline or any(name in cmdline for name in RAY_PROCESS_NAMES[:4]):
            found.append(f"{entry.name}: {cmdline[:120]}")
    return found


@pytest.fixture(scope="module")
def ray_head():
    port = _free_port()
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    start = [str(BIN / "ray"), "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}", "--num-cpus=2",
             "--include-dashboard=false", "--disable-usage-stats"]
    subprocess.run(start, check=True, env=env, capture_output=True, timeout=120)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([str(BIN / "ray"), "stop", "--force"], env=env, capture_output=True, timeout=120)
        deadline = time.monotonic() + 15
        while _ray_processes(port) and time.monotonic() < deadline:
            time.sleep(0.5)
        left = _ray_processes(port)
        assert not left, "ray stop --force left Ray processes behind:\n" + "\n".join(left)


def _pgrl_train(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "pgrl"), "--threads", "1", "train", *args, "--no-progress"],
                          capture_output=True, text=True, timeout=timeout)


def _greedy(output: str) -> float:
    match = re.search(r"greedy return over 100 episodes: ([-\d.]+)", output)
    assert match, output
    return float(match.group(1))


def _last_row(run_dir: Path) -> dict[str, str]:
    with (run_dir / "metrics.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))[-1]


@pytest.mark.learning
def test_ppo_on_a_ray_cluster_solves_cartpole(ray_head, tmp_path):
    run_dir = tmp_path / "ppo"
    done = _pgrl_train("ppo", "CartPole-v1", "--backend", "ray", "--num-workers", "2", "--address", ray_head,
                       "--seed", "0", "--eval-episodes", "100", "--out", str(run_dir))
    assert done.returncode == 0, done.stderr[-2000:]
    assert "trained ppo on CartPole-v1 for 100,096 steps" in done.stdout
    assert _greedy(done.stdout) >= THRESHOLD, done.stdout
    row = _last_row(run_dir)
    assert (row["ray/workers"], row["ray/restarts"]) == ("2.0", "0.0")


@pytest.mark.learning
def test_killed_rollout_actor_is_restarted_and_its_rollout_collected_again(ray_head, tmp_path):
    """Every attempt must restart the worker and collect its rollout again; one must solve the task.

    Retry budget: up to KILLED_ATTEMPTS runs with seeds 0, 1, ... (see the module docstring for the
    sweep that sized it); the restart checks hold on every attempt, the return on one.
    """
    import ray

    attempts = []
    with ray_session(ray_head):  # joined here (train_run uses it as it is), left on the way out
        for seed in range(KILLED_ATTEMPTS):
            run_dir = tmp_path / f"killed-{seed}"
            killed: list[int] = []

            def kill_worker_1_mid_collection(model, row, killed=killed):
                if not killed and model.num_timesteps >= 20_000:
                    pid = model._collector.group.pids[1]
                    killed.append(pid)
                    # SIGKILL a moment after this callback returns, while the next rollout is being collected
                    threading.Timer(0.005, os.kill, (pid, 9)).start()

            started = time.monotonic()
            with pytest.warns(WorkerRestartWarning, match=r"ray rollout worker 1 was lost \(\w+\); Ray restarts it"):
                _, model, summary = runs.train_run(
                    "ppo", "CartPole-v1", seed=seed, out=run_dir, progress_bar=False, eval_episodes=100,
                    callback=kill_worker_1_mid_collection, ray_options=RayOptions(num_workers=2),
                )
            assert ray.is_initialized()
            assert killed, "the callback never ran"
            assert model.num_timesteps == 100_096  # every iteration got both workers' rollouts
            assert _last_row(run_dir)["ray/restarts"] == "1.0"
            mean = summary["eval_return_mean"]
            attempts.append(f"seed {seed}: {mean:.1f} ± {summary['eval_return_std']:.1f} "
                            f"in {time.monotonic() - started:.0f} s")
            if mean >= THRESHOLD:
                break
    assert not ray.is_initialized()
    assert summary["eval_return_mean"] >= THRESHOLD, (
        f"ppo with a killed rollout actor did not reach {THRESHOLD} in {KILLED_ATTEMPTS} attempts: "
        + "; ".join(attempts)
    )


@pytest.mark.learning
def test_a3c_on_a_ray_cluster_solves_cartpole(ray_head, tmp_path):
    attempts = []
    for seed in range(ATTEMPTS):
        run_dir = tmp_path / f"a3c-{seed}"
        started = time.monotonic()
        done = _pgrl_train("a3c", "CartPole-v1", "--backend", "ray", "--num-workers", "2", "--address", ray_head,
                           "--seed", str(seed), "--eval-episodes", "100", "--out", str(run_dir))
        assert done.returncode == 0, done.stderr[-2000:]
        row = _last_row(run_dir)
        assert float(row["async/staleness_mean"]) <= 2 * 2 and row["async/dropped"] != ""
        mean = _greedy(done.stdout)
        attempts.append(f"seed {seed}: {mean:.1f} in {time.monotonic() - started:.0f} s")
        if mean >= THRESHOLD:
            return
    pytest.fail(f"a3c on Ray did not reach {THRESHOLD} in {ATTEMPTS} attempts: " + "; ".join(attempts))
