"""pgrl vs Stable-Baselines3 on a CPU, measured side by side in one run (alternating seeds).

1. PPO CartPole-v1 time-to-solve: pgrl's `fast` preset (native env) vs SB3 with rl-zoo's tuned
   hyperparameters.  Solved = greedy 100-episode mean >= 475 on Gymnasium's CartPole-v1, checked
   every --eval-every steps (the same for both) outside the timed training.
2. Framework overhead: rl-zoo's PPO hyperparameters in both, both on Gymnasium's own env,
   full 1e5-step training time.
3. Throughput: PPO on native CartPole, 1024 envs x 128 steps, 4 epochs x 4 minibatches,
   end-to-end env-steps/s; and rollout-only steps/s (policy + env, no update).
4. A2C CartPole-v1 time-to-solve: the same rl-zoo A2C hyperparameters in pgrl (native env) and SB3.

    .venv/bin/python -m benchmarks.speed --seeds 5 [--only 1,2,3,4] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import time

import torch

import pgrl
from benchmarks import sb3_runner
from benchmarks.common import machine, median, today, train_to_threshold


def fmt(x: float, digits: int = 2) -> str:
    return "n/a" if x != x else f"{x:.{digits}f}"


def solve_row(name: str, pgrl_results, sb3_results) -> str:
    p_solved, s_solved = sum(r.solved for r in pgrl_results), sum(r.solved for r in sb3_results)
    p_t = median([r.seconds for r in pgrl_results if r.solved])
    s_t = median([r.seconds for r in sb3_results if r.solved])
    p_steps = median([r.steps for r in pgrl_results if r.solved])
    s_steps = median([r.steps for r in sb3_results if r.solved])
    return (f"| {name} | {p_solved}/{len(pgrl_results)} | {fmt(p_t)} s ({p_steps:,.0f} steps) | "
            f"{s_solved}/{len(sb3_results)} | {fmt(s_t)} s ({s_steps:,.0f} steps) | {fmt(s_t / p_t, 1)}x |")


def time_to_solve(algo: str, preset: str, seeds: list[int], eval_every: int, device: str, budget: int,
                  sb3_budget: int, sb3_every: int):
    pgrl_results, sb3_results = [], []
    for seed in seeds:  # alternate so both see the same machine conditions
        model = pgrl.ALGORITHMS[algo]("MlpPolicy", "CartPole-v1", seed=seed, device=device, preset=preset)
        pgrl_results.append(train_to_threshold(model, "CartPole-v1", 475.0, budget, eval_every,
                                               eval_backend="gymnasium"))
        print(f"  pgrl {algo} seed {seed}: {pgrl_results[-1]}", flush=True)
        sb3_results.append(sb3_runner.time_to_solve(algo, seed, sb3_budget, sb3_every))
        print(f"  sb3  {algo} seed {seed}: {sb3_results[-1]}", flush=True)
    return pgrl_results, sb3_results


def overhead(seeds: list[int], total: int = 100_000):
    pgrl_times, sb3_times = [], []
    for seed in seeds:
        model = pgrl.PPO("MlpPolicy", "CartPole-v1", seed=seed, preset="zoo", env_backend="gymnasium", device="cpu")
        start = time.perf_counter()
        model.learn(total)
        pgrl_times.append(time.perf_counter() - start)
        sb3_times.append(sb3_runner.train_seconds("ppo", seed, total))
        print(f"  seed {seed}: pgrl {pgrl_times[-1]:.2f} s, sb3 {sb3_times[-1]:.2f} s", flush=True)
    return median(pgrl_times), median(sb3_times)


def throughput(device: str, iterations: int = 5):
    kwargs = dict(n_envs=1024, n_steps=128, batch_size=32768, n_epochs=4, device=device)
    model = pgrl.PPO("MlpPolicy", "CartPole-v1", seed=0, env_backend="native", **kwargs)
    steps_per_iter = 1024 * 128
    model.learn(steps_per_iter)  # warm-up: allocations, first kernels
    sync = torch.cuda.synchronize if model.device.type == "cuda" else (lambda: None)
    sync()
    start = time.perf_counter()
    model.learn(steps_per_iter * iterations)
    sync()
    end_to_end = steps_per_iter * iterations / (time.perf_counter() - start)
    model.policy.eval()
    start = time.perf_counter()
    for _ in range(iterations):
        model.collect()
    sync()
    rollout_only = steps_per_iter * iterations / (time.perf_counter() - start)
    return end_to_end, rollout_only


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--only", default="1,2,3,4")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--eval-every", type=int, default=5000)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    seeds = list(range(args.seeds))
    only = set(args.only.split(","))
    print(f"machine: {machine()}; device: {args.device}; date: {today()}\n")
    rows = []
    if "1" in only:
        print("1. PPO CartPole-v1 time-to-solve", flush=True)
        p, s = time_to_solve("ppo", "fast", seeds, args.eval_every, args.device, 100_000, 100_000, args.eval_every)
        rows.append(solve_row("PPO CartPole-v1 time-to-solve (pgrl `fast` preset vs SB3 rl-zoo)", p, s))
    if "2" in only:
        print("2. rl-zoo PPO hyperparameters on Gymnasium's env, 1e5 steps", flush=True)
        p_t, s_t = overhead(seeds)
        rows.append(f"| SB3 hyperparameters on Gymnasium's env, 1e5 steps | | {p_t:.2f} s | | {s_t:.2f} s | "
                    f"{s_t / p_t:.1f}x (pgrl/SB3 = {p_t / s_t:.2f}) |")
    if "3" in only:
        print("3. throughput", flush=True)
        e2e, rollout = throughput(args.device)
        rows.append(f"| PPO end-to-end steps/s (native, 1024 x 128, 4 x 4) | | {e2e:,.0f} | | | |")
        rows.append(f"| rollout-only steps/s (policy + native env) | | {rollout:,.0f} | | | |")
    if "4" in only:
        print("4. A2C CartPole-v1 time-to-solve", flush=True)
        p, s = time_to_solve("a2c", "zoo", seeds, args.eval_every, args.device, 200_000, 500_000, args.eval_every)
        rows.append(solve_row("A2C CartPole-v1 time-to-solve (pgrl `zoo` preset vs SB3 rl-zoo)", p, s))
    print("\n| measure | pgrl solved | pgrl | SB3 solved | SB3 | SB3 / pgrl |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(row)


if __name__ == "__main__":
    main()
