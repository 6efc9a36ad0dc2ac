"""Sample efficiency versus wall-clock time on CartPole-v1, algorithm by algorithm.

REINFORCE, VPG, one-step actor-critic, A3C, A3C+GAE, A2C, PPO and TRPO, each with its preset and
K seeds.  Synchronous algorithms are "solved" when a greedy 100-episode evaluation (every
--eval-every steps, outside the timed training) reaches 475, and stop there.  A3C's workers
cannot be paused for an evaluation, so A3C is "solved" when the mean return of its last 100
training episodes reaches 475 (and stops at its preset's target_return).  The table gives env
steps and training seconds to the solve (medians over the seeds that solved) and the greedy
100-episode return of the final model.  The PNG has two panels: the training return against
env steps and against seconds.

    .venv/bin/python -m benchmarks.compare_cartpole --seeds 3 --out runs/compare_cartpole
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import torch

import pgrl
from benchmarks.common import machine, median, today, train_to_threshold
from pgrl.report import read_metrics

ENTRIES = [
    ("REINFORCE", "reinforce", "default"),
    ("VPG", "vpg", "default"),
    ("ActorCritic", "actor_critic", "default"),
    ("A3C", "a3c", "default"),
    ("A3C+GAE", "a3c", "gae"),
    ("A2C", "a2c", "default"),
    ("PPO", "ppo", "default"),
    ("TRPO", "trpo", "default"),
]
THRESHOLD = 475.0


def first_solve(metrics: dict[str, list[float]]) -> tuple[float, float]:
    for step, seconds, ret in zip(metrics["step"], metrics["time/elapsed"], metrics["rollout/ep_return_mean"],
                                  strict=True):
        if ret == ret and ret >= THRESHOLD:
            return step, seconds
    return math.nan, math.nan


def plot(curves: dict[str, list[dict[str, list[float]]]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(13, 4.6), constrained_layout=True)
    colors = plt.get_cmap("tab10")
    for i, (label, runs) in enumerate(curves.items()):
        for j, m in enumerate(runs):
            kw = dict(color=colors(i), alpha=0.85, linewidth=1.4, label=label if j == 0 else None)
            axes[0].plot(m["step"], m["rollout/ep_return_mean"], **kw)
            axes[1].plot(m["time/elapsed"], m["rollout/ep_return_mean"], **kw)
            for ax, x in ((axes[0], m["step"]), (axes[1], m["time/elapsed"])):
                ax.plot(x[-1:], m["rollout/ep_return_mean"][-1:], "o", color=colors(i), markersize=4)
    for ax, xlabel in ((axes[0], "environment steps"), (axes[1], "training seconds (log scale)")):
        ax.axhline(THRESHOLD, color="grey", linestyle=":", linewidth=1)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("training return (mean of last 100 episodes)")
        ax.grid(alpha=0.3)
    axes[0].set_xscale("log")
    axes[1].set_xscale("log")
    axes[0].set_title("sample efficiency")
    axes[1].set_title("wall-clock")
    axes[1].legend(loc="lower right", fontsize=8)
    fig.suptitle("CartPole-v1, each algorithm's preset, one line per seed; synchronous runs end (dot) where the "
                 "greedy policy first scored >= 475,\nA3C runs where the training mean reached its target",
                 fontsize=10)
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", default="runs/compare_cartpole")
    parser.add_argument("--only", default=None, help="comma-separated labels")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--eval-every", type=int, default=5000)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    curves, rows = {}, []
    for label, algo, preset in ENTRIES:
        if args.only and label not in args.only.split(","):
            continue
        steps, seconds, finals, runs = [], [], [], []
        for seed in range(args.seeds):
            run_dir = out / f"{label}-s{seed}"
            if run_dir.exists():
                for f in run_dir.iterdir():
                    f.unlink()
            model = pgrl.ALGORITHMS[algo]("MlpPolicy", "CartPole-v1", seed=seed, preset=preset, device="cpu")
            if algo == "a3c":
                model.learn(log_dir=run_dir)
                metrics = read_metrics(run_dir / "metrics.csv")
                s, t = first_solve(metrics)
            else:
                result = train_to_threshold(model, "CartPole-v1", THRESHOLD, model.config.n_timesteps,
                                            args.eval_every, log_dir=run_dir)
                metrics = read_metrics(run_dir / "metrics.csv")
                s, t = (result.steps, result.seconds) if result.solved else (math.nan, math.nan)
            runs.append(metrics)
            steps.append(s)
            seconds.append(t)
            finals.append(pgrl.evaluate_policy(model, "CartPole-v1", 100, backend="gymnasium")[0])
            print(f"{label} seed {seed}: solve at {s} steps / {t:.2f} s; greedy {finals[-1]:.1f}", flush=True)
        curves[label] = runs
        solved = sum(s == s for s in steps)
        rows.append((label, algo, preset, solved, median(steps), median(seconds), median(finals)))
    plot(curves, out / "compare_cartpole.png")
    (out / "results.json").write_text(json.dumps(rows, indent=1))
    print(f"\nmachine: {machine()}; date: {today()}\n")
    print("| algorithm | preset | solved | env steps to solve | seconds to solve | final greedy return |")
    print("|---|---|---|---|---|---|")
    for label, algo, preset, solved, s, t, g in rows:
        print(f"| {label} | {algo}/{preset} | {solved}/{args.seeds} | {s:,.0f} | {t:.1f} | {g:.1f} |")
    print(f"\nplot: {out / 'compare_cartpole.png'}")


if __name__ == "__main__":
    main()
