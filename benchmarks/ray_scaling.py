"""Steps/s of PPO (collection + update) on CartPole-v1: in-process against Ray with 1 and 2 workers.

Every row runs the same PPO iteration (the CartPole-v1 default preset: 8 envs in total x 32 steps,
20 epochs of one 256-sample minibatch) with the same total number of envs: in-process (one
Collector stepping 8 envs) and through Ray (K rollout actors with 8/K envs each, weights sent
once per iteration, rollouts gathered and concatenated on the learner).  Ray is started inside
this process; rows are interleaved round by round so that a busy machine slows them alike, and
medians over the rounds are printed.  Two env backends: pgrl's native batched CartPole (all envs
in one tensor op) and Gymnasium's (one Python env per copy), where the per-env cost is what the
workers can split.  The load average is printed before and after: on a shared machine it
changes the numbers.

    .venv/bin/python -m benchmarks.ray_scaling            # = make bench-ray
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

import pgrl
from benchmarks.common import machine, today
from pgrl.distributed import RayCollector, RayOptions, build_model, ray_session

TOTAL_ENVS = 8
N_STEPS = 32


def _time_iterations(model, collector, iterations: int) -> tuple[float, float]:
    """(collect ms, update ms) per iteration, averaged over ``iterations``."""
    collect_s = update_s = 0.0
    for _ in range(iterations):
        started = time.perf_counter()
        rollout = collector.collect(N_STEPS)
        collected = time.perf_counter()
        model.update(rollout, 1.0)
        collect_s += collected - started
        update_s += time.perf_counter() - collected
    return 1e3 * collect_s / iterations, 1e3 * update_s / iterations


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=20, help="timed PPO iterations per row and round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds over all rows (medians are reported)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    parser.add_argument("--backends", default="native,gymnasium")
    args = parser.parse_args()
    torch.set_num_threads(1)
    workers = [int(k) for k in args.workers.split(",")]
    backends = args.backends.split(",")
    print(f"# PPO CartPole-v1 iteration (8 envs x 32 steps, 20 epochs x 256), {today()}, {machine()}")
    print(f"# {args.rounds} rounds x {args.iterations} iterations per row, rows interleaved; medians over rounds")
    print(f"# load average before: {os.getloadavg()[0]:.2f}")
    # every row's actors live for the whole benchmark (idle while another row runs): one CPU each
    with ray_session(num_cpus=len(backends) * sum(workers)) as ray:
        rows, groups = [], []
        try:
            for backend in backends:
                model = pgrl.PPO("MlpPolicy", "CartPole-v1", seed=0, n_envs=TOTAL_ENVS, env_backend=backend)
                rows.append([backend, "in-process", f"1 x {TOTAL_ENVS}", model, model.collector(), []])
                for k in workers:
                    options = RayOptions(num_workers=k, envs_per_worker=TOTAL_ENVS // k)
                    model = build_model("ppo", "CartPole-v1", options, seed=0, env_backend=backend)
                    collector = RayCollector(model, ray, k, TOTAL_ENVS // k)
                    groups.append(collector)
                    rows.append([backend, f"ray, {k} worker{'s' if k > 1 else ''}", f"{k} x {TOTAL_ENVS // k}",
                                 model, collector, []])
            for row in rows:
                _time_iterations(row[3], row[4], args.warmup)
            for _ in range(args.rounds):
                for row in rows:
                    row[5].append(_time_iterations(row[3], row[4], args.iterations))
        finally:
            for collector in groups:
                collector.close()
    print(f"# load average after: {os.getloadavg()[0]:.2f}")
    print()
    print("| env backend | run | workers x envs | steps/s | collect ms/iter | update ms/iter | vs in-process |")
    print("|---|---|---|---|---|---|---|")
    local_sps = {}
    for backend, run, layout, _, _, times in rows:
        collect_ms = statistics.median(t[0] for t in times)
        update_ms = statistics.median(t[1] for t in times)
        sps = statistics.median(1e3 * N_STEPS * TOTAL_ENVS / (t[0] + t[1]) for t in times)
        local_sps.setdefault(backend, sps)
        ratio = sps / local_sps[backend]
        print(f"| {backend} | {run} | {layout} | {sps:,.0f} | {collect_ms:.1f} | {update_ms:.1f} | {ratio:.2f}x |")


if __name__ == "__main__":
    main()
