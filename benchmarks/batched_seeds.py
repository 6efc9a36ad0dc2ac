"""K seeds of PPO on native CartPole-v1 in one batched process vs one seed alone, side by side.

Both train the `default` PPO preset (rl-zoo's hyperparameters: 8 envs x 32 steps, 20 epochs of
one 256-sample minibatch) for the full 1e5 steps; the lone seed and the batch alternate over
--repeats, and the medians are compared.  Each is timed at 1 and 2 torch threads (the lone
seed is fastest with 1, a batch of 8 is wide enough for 2 to help) and the best of each is
used for the ratio, so both sides get this 2-core machine at its best.  Greedy 100-episode
returns of every seed are printed too, so a fast but broken batch would show.

    .venv/bin/python -m benchmarks.batched_seeds --seeds 8 --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import pgrl
from benchmarks.common import machine, today
from pgrl.batched import train_batched


def time_alone(steps: int, seed: int) -> tuple[float, float]:
    started = time.perf_counter()
    model = pgrl.PPO("MlpPolicy", "CartPole-v1", seed=seed).learn(steps)
    seconds = time.perf_counter() - started
    return seconds, pgrl.evaluate_policy(model, "CartPole-v1", 100)[0]


def time_batch(steps: int, seeds: list[int]) -> tuple[float, list[float]]:
    started = time.perf_counter()
    summaries = train_batched("ppo", "CartPole-v1", seeds, total_timesteps=steps)
    seconds = time.perf_counter() - started
    return seconds, [pgrl.evaluate_policy(s["model"], "CartPole-v1", 100)[0] for s in summaries]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=8, help="seeds in the batch")
    parser.add_argument("--steps", type=int, default=100_000, help="env steps per seed")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", default="1,2", help="torch thread counts to try, e.g. 1,2")
    args = parser.parse_args()
    seeds = list(range(args.seeds))
    threads = [int(t) for t in args.threads.split(",")]
    alone: dict[int, list[float]] = {t: [] for t in threads}
    batch: dict[int, list[float]] = {t: [] for t in threads}
    returns_alone, returns_batch = [], []
    for repeat in range(args.repeats):
        for t in threads:
            torch.set_num_threads(t)
            seconds, ret = time_alone(args.steps, seed=repeat)
            alone[t].append(seconds)
            returns_alone.append(ret)
            seconds, rets = time_batch(args.steps, seeds)
            batch[t].append(seconds)
            returns_batch = rets
            print(f"repeat {repeat} threads {t}: one seed {alone[t][-1]:.2f} s, "
                  f"{args.seeds} seeds {batch[t][-1]:.2f} s", flush=True)
    torch.set_num_threads(1)
    print(f"\nmachine: {machine().rsplit(',', 1)[0]}; date {today()}; PPO default preset, "
          f"{args.steps:,} steps per seed, medians of {args.repeats}\n")
    print("| run | torch threads | seconds (median) |")
    print("|---|---|---|")
    for t in threads:
        print(f"| 1 seed | {t} | {statistics.median(alone[t]):.2f} |")
        print(f"| {args.seeds} seeds batched | {t} | {statistics.median(batch[t]):.2f} |")
    best_alone = min(statistics.median(v) for v in alone.values())
    best_batch = min(statistics.median(v) for v in batch.values())
    print(f"\n{args.seeds} seeds / 1 seed (best thread count each): {best_batch / best_alone:.2f}x "
          f"(target <= 2.0); {args.seeds} separate runs would take ~{args.seeds:.0f}x")
    solved = sum(r >= 475 for r in returns_batch)
    print(f"greedy 100-episode returns of the last batch: {[round(r, 1) for r in returns_batch]} "
          f"({solved}/{len(returns_batch)} >= 475); lone seeds: {[round(r, 1) for r in returns_alone]}")


if __name__ == "__main__":
    main()
