"""Masked PPO against sb3-contrib's MaskablePPO, side by side on one machine (docs/environments.md, "Action masks").

The task is pgrl.envs.identity.InvalidActionEnv (Discrete(20), 15 of the 19 wrong actions invalid
each step, masks from its action_masks() method, which both libraries read), 4 envs, the same
hyperparameters in both: n_steps 128, batch 128, 4 epochs, lr 3e-4, gamma 0, 64-64 tanh MLPs.
Measured: training env steps/s over a fixed budget (the systems alternate, --repeats times) and
the env steps until a greedy 5-episode mean first reaches 90 of 100 (checked every 2,048 steps,
outside the timing).

    .venv/bin/python -m benchmarks.masking --repeats 2
"""

from __future__ import annotations

import argparse
import statistics
from functools import partial

import torch

import pgrl
from benchmarks.common import machine, steps_to_reach, today, training_speed
from pgrl.envs.identity import InvalidActionEnv

TASK = {"dim": 20, "n_invalid": 15, "ep_length": 100}
HP = {"n_steps": 128, "batch_size": 128, "n_epochs": 4, "learning_rate": 3e-4, "gamma": 0.0, "ent_coef": 0.0}
N_ENVS, THRESHOLD, CHECK_EVERY = 4, 90.0, 2048


def pgrl_model(seed: int):
    return pgrl.PPO("MlpPolicy", partial(InvalidActionEnv, **TASK), n_envs=N_ENVS, seed=seed,
                    policy_kwargs={"net_arch": [64, 64]}, **HP)


def sb3_model(seed: int):
    from sb3_contrib import MaskablePPO
    from stable_baselines3.common.vec_env import DummyVecEnv

    env = DummyVecEnv([partial(InvalidActionEnv, **TASK)] * N_ENVS)
    return MaskablePPO("MlpPolicy", env, seed=seed, policy_kwargs={"net_arch": [64, 64]}, device="cpu", **HP)


def evaluate(system: str, model) -> float:
    if system == "pgrl":
        return pgrl.evaluate_policy(model, InvalidActionEnv(**TASK), n_eval_episodes=5)[0]
    from sb3_contrib.common.maskable.evaluation import evaluate_policy

    return evaluate_policy(model, InvalidActionEnv(**TASK), n_eval_episodes=5, warn=False)[0]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20_480, help="timed training steps per run")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--seeds", type=int, default=3, help="seeds for steps-to-threshold")
    parser.add_argument("--budget", type=int, default=40_960)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    print(f"machine: {machine()}; date: {today()}", flush=True)
    speed: dict[str, list[float]] = {"pgrl": [], "sb3-contrib": []}
    for repeat in range(args.repeats):
        for system in speed:
            model = pgrl_model(repeat) if system == "pgrl" else sb3_model(repeat)
            speed[system].append(training_speed(model, args.steps, warmup=CHECK_EVERY))
            print(f"{system}: {speed[system][-1]:.0f} env steps/s", flush=True)
    reached = {system: [steps_to_reach(pgrl_model(seed) if system == "pgrl" else sb3_model(seed),
                                       partial(evaluate, system), THRESHOLD, args.budget, CHECK_EVERY)
                        for seed in range(args.seeds)]
               for system in speed}
    print(f"\n| system | training env steps/s (median) | steps to greedy >= 90, seeds 0-{args.seeds - 1} |")
    print("|---|---|---|")
    for system in speed:
        steps = ", ".join(f"{s:,}" if s is not None else f"> {args.budget:,}" for s in reached[system])
        print(f"| {system} | {statistics.median(speed[system]):,.0f} | {steps} |")
    ratio = statistics.median(speed["pgrl"]) / statistics.median(speed["sb3-contrib"])
    print(f"\npgrl / sb3-contrib steps/s: {ratio:.2f}x")


if __name__ == "__main__":
    main()
