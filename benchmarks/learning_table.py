"""Steps and training seconds each algorithm's preset needs to solve CartPole-v1 and Pendulum-v1.

Each run trains the preset's full budget with a fixed seed, exactly as the learning tests do, and
reports the final greedy return (Gymnasium's env; 100 episodes on CartPole-v1, 20 on Pendulum-v1)
and the training seconds.  Along the way a greedy check every `--eval-every` steps (outside the
timed training) records when the threshold (475; -200 for PPO and -250 for A2C on Pendulum-v1)
was first reached.  Prints a Markdown table for docs/results.md.

    .venv/bin/python -m benchmarks.learning_table --seeds 0
"""

from __future__ import annotations

import argparse

import torch

import pgrl
from benchmarks.common import machine, today, train_to_threshold

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
    print("| algorithm | env | budget (steps) | training s | final greedy return | first reached threshold at |")
    print("|---|---|---|---|---|---|")
    for algo, env_id, threshold in CASES:
        if args.only and algo not in args.only.split(","):
            continue
        for seed in seeds:
            model = pgrl.ALGORITHMS[algo]("MlpPolicy", env_id, seed=seed, device="cpu")
            n_eval = 100 if env_id == "CartPole-v1" else 20
            every = args.eval_every if env_id == "CartPole-v1" else args.eval_every * 10
            result = train_to_threshold(model, env_id, threshold, model.config.n_timesteps, every, n_eval,
                                        eval_backend="gymnasium", stop=False)
            first = f"{result.steps:,} steps / {result.seconds:.1f} s" if result.solved else "not reached"
            print(f"| {algo} | {env_id} | {model.num_timesteps:,} | {model.train_seconds:.1f} | "
                  f"{result.final_return:.1f} (seed {seed}) | {first} |", flush=True)

if __name__ == "__main__":
    main()
