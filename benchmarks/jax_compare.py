"""pgrl vs a compiled JAX PPO (rejax, PureJaxRL's design) vs Stable-Baselines3 on CartPole-v1, side
by side in one run (`make bench-jax`; docs "Speed").

Every system trains PureJaxRL's CartPole-v1 PPO config: 4 envs x 128 steps, 4 epochs x 4
minibatches, 2.5e-4 annealed linearly to 0, gamma 0.99, lambda 0.95, clip 0.2, entropy 0.01,
value 0.5, max grad norm 0.5 (rejax clips per element), 64-64 tanh actor and critic, 976
iterations (499,712 env steps).  "wide" is the same with 1024 envs for 10 iterations, where env
steps/s is the figure.  Each run is its own process, the systems alternate, and the table gives
medians: training seconds (rejax: after compiling, which is listed apart) and the whole process
(start to exit, imports and compiling included).  pgrl uses its native batched CartPole, SB3
Gymnasium's; the JAX side runs in .venv-jax (jax, rejax, gymnax), which `make bench-jax` creates.

    .venv/bin/python -m benchmarks.jax_compare --jax-python .venv-jax/bin/python --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.jax_worker import COMMON, CONFIGS

ROOT = Path(__file__).resolve().parents[1]


def _iterations(config: str) -> int:
    hp = CONFIGS[config]
    return hp["total_timesteps"] // (hp["num_envs"] * COMMON["num_steps"])


def _hyperparameters(config: str) -> dict:
    hp = {**COMMON, **CONFIGS[config]}
    return {"n_steps": hp["num_steps"], "batch_size": hp["num_envs"] * hp["num_steps"] // hp["num_minibatches"],
            "n_epochs": hp["num_epochs"], "gamma": hp["gamma"], "gae_lambda": hp["gae_lambda"],
            "clip_range": hp["clip_eps"], "ent_coef": hp["ent_coef"], "vf_coef": hp["vf_coef"],
            "max_grad_norm": hp["max_grad_norm"]}


def pgrl_worker(config: str, seed: int, threads: int) -> dict:
    import torch

    import pgrl

    torch.set_num_threads(threads)
    n_envs = CONFIGS[config]["num_envs"]
    model = pgrl.PPO("MlpPolicy", "CartPole-v1", n_envs=n_envs, seed=seed, env_backend="native",
                     learning_rate=f"lin_{COMMON['lr']}", policy_kwargs={"net_arch": [64, 64]},
                     **_hyperparameters(config))
    steps = _iterations(config) * n_envs * COMMON["num_steps"]
    start = time.perf_counter()
    model.learn(steps)
    train_s = time.perf_counter() - start
    ret = pgrl.evaluate_policy(model, "CartPole-v1", 100)[0] if config == "default" else float("nan")
    return {"system": f"pgrl ({threads} thread{'s' if threads > 1 else ''})", "train_s": train_s, "steps": steps,
            "return": ret}


def sb3_worker(config: str, seed: int) -> dict:
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.utils import LinearSchedule

    torch.set_num_threads(1)
    n_envs = CONFIGS[config]["num_envs"]
    env = make_vec_env("CartPole-v1", n_envs=n_envs, seed=seed)
    model = PPO("MlpPolicy", env, learning_rate=LinearSchedule(COMMON["lr"], 0.0, 1.0), seed=seed, device="cpu",
                policy_kwargs={"net_arch": [64, 64]}, **_hyperparameters(config))
    steps = _iterations(config) * n_envs * COMMON["num_steps"]
    start = time.perf_counter()
    model.learn(steps)
    train_s = time.perf_counter() - start
    ret = evaluate_policy(model, make_vec_env("CartPole-v1", n_envs=1, seed=10**6), 100)[0]
    return {"system": "SB3", "train_s": train_s, "steps": steps, "return": float(ret)}


def run(command: list[str]) -> dict:
    """One worker process: its JSON line, with the whole process's seconds added."""
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    whole = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["whole_s"] = whole
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jax-python", default=str(ROOT / ".venv-jax" / "bin" / "python"),
                        help="python of the venv holding jax, rejax and gymnax")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--configs", default="default,wide")
    parser.add_argument("--no-sb3", action="store_true", help="leave SB3 out (it has no wide run either way)")
    parser.add_argument("--jax-cache", default=None, metavar="DIR",
                        help="JAX's persistent compilation cache for rejax (emptied first): an untimed cold run fills "
                             "it, so every timed rejax run is warm (without it every run compiles cold)")
    parser.add_argument("--worker", choices=["pgrl", "sb3"], help=argparse.SUPPRESS)
    parser.add_argument("--config", default="default", help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker == "pgrl":
        print(json.dumps(pgrl_worker(args.config, args.seed, args.threads)))
        return
    if args.worker == "sb3":
        print(json.dumps(sb3_worker(args.config, args.seed)))
        return
    if not Path(args.jax_python).exists():
        raise SystemExit(f"no JAX venv at {args.jax_python}: `make bench-jax` creates .venv-jax")

    import torch

    from benchmarks.common import today
    from pgrl.report import machine_description

    print(f"machine: {machine_description()}, torch {torch.__version__} (each pgrl and SB3 run sets its own "
          f"threads); date: {today()}", flush=True)
    me = [sys.executable, "-m", "benchmarks.jax_compare", "--worker"]
    for config in args.configs.split(","):
        commands = {"rejax": [args.jax_python, "benchmarks/jax_worker.py", "--config", config]}
        if args.jax_cache:
            shutil.rmtree(args.jax_cache, ignore_errors=True)  # emptied, so the first run is really cold
            commands["rejax"] += ["--compile-cache", args.jax_cache]
            cold = run([*commands["rejax"], "--seed", "99"])  # fills the cache: the timed runs load it
            print(f"  {config} rejax cold (fills {args.jax_cache}): train {cold['train_s']:.2f} s, whole "
                  f"{cold['whole_s']:.2f} s, compile {cold['compile_s']:.2f} s; the runs below are warm", flush=True)
        commands["pgrl (1 thread)"] = [*me, "pgrl", "--config", config, "--threads", "1"]
        if config == "wide":
            commands["pgrl (2 threads)"] = [*me, "pgrl", "--config", config, "--threads", "2"]
        elif not args.no_sb3:
            commands["SB3"] = [*me, "sb3", "--config", config]
        results: dict[str, list[dict]] = {name: [] for name in commands}
        for repeat in range(args.repeats):
            for name, command in commands.items():  # alternate: every system sees the same machine
                results[name].append(run([*command, "--seed", str(repeat)]))
                r = results[name][-1]
                compiled = f", compile {r['compile_s']:.2f} s" if "compile_s" in r else ""
                print(f"  {config} {name} seed {repeat}: train {r['train_s']:.2f} s, whole {r['whole_s']:.2f} s"
                      f"{compiled}, return {r['return']:.1f}", flush=True)
        _table(config, results)


def _table(config: str, results: dict[str, list[dict]]) -> None:
    med = {name: {key: statistics.median(r[key] for r in rs) for key in ("train_s", "whole_s")}
           for name, rs in results.items()}
    steps = next(iter(results.values()))[0]["steps"]
    compile_s = statistics.median(r["compile_s"] for r in results["rejax"])
    print(f"\n{config}: {steps:,} env steps, medians of {len(results['rejax'])}")
    print("| system | training s | env steps/s | whole process s | train / rejax's | whole / rejax's | returns |")
    print("|---|---|---|---|---|---|---|")
    for name, m in med.items():
        returns = ", ".join(f"{r['return']:.0f}" for r in results[name])
        extra = f" (+ {compile_s:.1f} s compile)" if name == "rejax" else ""
        print(f"| {name} | {m['train_s']:.2f}{extra} | {steps / m['train_s']:,.0f} | {m['whole_s']:.1f} | "
              f"{m['train_s'] / med['rejax']['train_s']:.1f}x | {m['whole_s'] / med['rejax']['whole_s']:.1f}x | "
              f"{returns} |")
    print(flush=True)


if __name__ == "__main__":
    main()
