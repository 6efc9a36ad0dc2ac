"""`pgrl train ppo CartPole-v1` against Stable-Baselines3 with rl-zoo's settings, whole process each.

Both sides are what a user runs and waits for: pgrl's CLI with its default preset (rl-zoo's
hyperparameters: 8 envs x 32 steps, 20 epochs, 1e5 steps, on pgrl's native CartPole) including
its greedy 10-episode evaluation and the run folder it writes; SB3 2.9.2's PPO with the same
hyperparameters on Gymnasium's CartPole-v1, trained and then evaluated with SB3's own
``evaluate_policy`` over 10 greedy episodes.  Each run is its own process (imports, kernel
loading and everything else included), the systems alternate, and the table gives medians.

    .venv/bin/python -m benchmarks.cli_compare --repeats 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def sb3_worker(seed: int, timesteps: int) -> dict:
    import torch
    from stable_baselines3.common.evaluation import evaluate_policy

    from benchmarks.sb3_runner import make_model

    torch.set_num_threads(1)
    model = make_model("ppo", seed)
    model.learn(timesteps)
    mean, _ = evaluate_policy(model, model.get_env(), n_eval_episodes=10, deterministic=True)
    return {"return": float(mean)}


def _timed(command: list[str]) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
    return seconds, done.stdout


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--worker", choices=["sb3"], help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timesteps", type=int, default=100_000, help="training steps of both (the preset's 1e5)")
    args = parser.parse_args(argv)
    if args.worker == "sb3":
        print(json.dumps(sb3_worker(args.seed, args.timesteps)))
        return

    import torch

    from benchmarks.common import today
    from pgrl.report import machine_description

    print(f"machine: {machine_description()}, torch {torch.__version__}, one torch thread each; date: {today()}",
          flush=True)
    pgrl_bin = str(Path(sys.executable).with_name("pgrl"))
    times: dict[str, list[float]] = {"pgrl": [], "SB3": []}
    returns: dict[str, list[float]] = {"pgrl": [], "SB3": []}
    for seed in range(args.repeats):
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "run"
            seconds, _ = _timed([pgrl_bin, "train", "ppo", "CartPole-v1", "--seed", str(seed), "--out", str(out),
                                 "--no-progress", "--eval-episodes", "10", "--total-timesteps", str(args.timesteps)])
            summary = json.loads((out / "summary.json").read_text())
        times["pgrl"].append(seconds)
        returns["pgrl"].append(float(summary["eval_return_mean"]))
        seconds, stdout = _timed([sys.executable, "-m", "benchmarks.cli_compare", "--worker", "sb3",
                                  "--seed", str(seed), "--timesteps", str(args.timesteps)])
        times["SB3"].append(seconds)
        returns["SB3"].append(json.loads(stdout.strip().splitlines()[-1])["return"])
        print(f"  seed {seed}: pgrl {times['pgrl'][-1]:.2f} s (return {returns['pgrl'][-1]:.1f}), "
              f"SB3 {times['SB3'][-1]:.2f} s (return {returns['SB3'][-1]:.1f})", flush=True)
    pgrl_s, sb3_s = statistics.median(times["pgrl"]), statistics.median(times["SB3"])
    print("\n| system | whole process s (median) | greedy 10-episode returns |\n|---|---|---|")
    for name, seconds in (("`pgrl train ppo CartPole-v1`", pgrl_s), ("SB3 2.9.2, rl-zoo's settings", sb3_s)):
        key = "pgrl" if name.startswith("`pgrl") else "SB3"
        print(f"| {name} | {seconds:.2f} | {', '.join(f'{r:.0f}' for r in returns[key])} |")
    print(f"\nSB3 / pgrl: {sb3_s / pgrl_s:.2f}x (target >= 5x)")


if __name__ == "__main__":
    main()
