"""Steps and training seconds each algorithm's preset needs to solve CartPole-v1 and Pendulum-v1.

Solved: greedy mean >= 475 over 100 episodes (CartPole-v1) or >= -200 / -250 over 20 episodes
(Pendulum-v1, PPO / A2C), checked every `--eval-every` steps outside the timed training.
Prints a Markdown table for the README.

    .venv/bin/python -m benchmarks.learning_table --seeds 0
"""

from __future__ import annotations

import argparse

import torch

import pgrl
from benchmarks.common import machine, median, today, train_to_threshold

CASES = [
    ("reinforce", "CartPole-v1", 475.0),
    ("vpg", "CartPole-v1", 475.0),
    ("actor_critic", "CartPole-v1", 475.0),
    ("a2c", "CartPole-v1", 475.0),
    ("ppo", "CartPole-v1", 475.0),
    ("ppo", "Pendulum-v1", -200.0),
    ("a2c", "Pendulum-v1", -250.0),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--eval-every", type=int, default=5000)
    parser.add_argument("--only", default=None, help="comma-separated algo names")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    seeds = [int(s) for s in args.seeds.split(",")]
    print(f"machine: {machine()}; date: {today()}\n")
    print("| algorithm | env | preset budget | solved | steps to solve (median) | training s (median) |")
    print("|---|---|---|---|---|---|")
    for algo, env_id, threshold in CASES:
        if args.only and algo not in args.only.split(","):
            continue
        results = []
        for seed in seeds:
            model = pgrl.ALGORITHMS[algo]("MlpPolicy", env_id, seed=seed, device="cpu")
            n_eval = 100 if env_id == "CartPole-v1" else 20
            every = args.eval_every if env_id == "CartPole-v1" else args.eval_every * 10
            results.append(
                train_to_threshold(model, env_id, threshold, model.config.n_timesteps, every, n_eval)
            )
        solved = sum(r.solved for r in results)
        steps = median([r.steps for r in results if r.solved])
        secs = median([r.seconds for r in results if r.solved])
        print(
            f"| {algo} | {env_id} | {model.config.n_timesteps:,} | {solved}/{len(results)} | "
            f"{steps:,.0f} | {secs:.1f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
