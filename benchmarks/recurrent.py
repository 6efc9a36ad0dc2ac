"""PPO with an LSTM policy against sb3-contrib's RecurrentPPO, side by side (docs/environments.md, "Memory").

The task is CartPoleNoVel-v1 (CartPole-v1 with both velocities zeroed, pgrl.envs.pomdp) with
rl-zoo's RecurrentPPO hyperparameters for it in both libraries (pgrl's preset for the id): 8
envs x 32 steps, one 256-sample minibatch x 20 epochs, lr 1e-3 and clip 0.2 both decaying
linearly, gamma 0.98, GAE 0.8, MlpLstmPolicy with sb3-contrib's defaults (an LSTM of 256 for
the actor and one for the critic, then 64-64 tanh MLPs).  pgrl steps its native batched
CartPoleNoVel (what `PPO("MlpLstmPolicy", "CartPoleNoVel-v1")` does) and, as a second row, the
same Gymnasium envs sb3-contrib steps (``--backend gymnasium``).

Measured: training env steps/s over a fixed budget after a warm-up (the systems alternate,
--repeats times), and the env steps until a greedy 20-episode mean first reaches 475 (each
library's EvalCallback every 10,240 steps in one learn call, which StopTrainingOnRewardThreshold
ends).

    .venv/bin/python -m benchmarks.recurrent --repeats 2 --seeds 2
"""

from __future__ import annotations

import argparse
import statistics

import torch

import pgrl
from benchmarks.common import machine, today, training_speed
from pgrl.config import load_preset

ENV_ID, THRESHOLD, CHECK_EVERY, N_ENVS = "CartPoleNoVel-v1", 475.0, 10_240, 8  # N_ENVS: the preset's
SYSTEMS = ("pgrl", "pgrl (gymnasium envs)", "sb3-contrib")


def _linear(start: float):
    return lambda progress_remaining: progress_remaining * start


def make_model(system: str, seed: int):
    if system.startswith("pgrl"):
        backend = "gymnasium" if "gymnasium" in system else "native"
        return pgrl.PPO("MlpLstmPolicy", ENV_ID, seed=seed, env_backend=backend, device="cpu")
    from sb3_contrib import RecurrentPPO
    from stable_baselines3.common.env_util import make_vec_env

    hp = {k: v for k, v in load_preset("ppo", ENV_ID).items() if k not in ("policy", "n_envs", "n_timesteps")}
    hp["learning_rate"], hp["clip_range"] = _linear(1e-3), _linear(0.2)
    env = make_vec_env(ENV_ID, n_envs=N_ENVS, seed=seed)
    return RecurrentPPO("MlpLstmPolicy", env, seed=seed, device="cpu", **hp)


def steps_to_threshold(system: str, budget: int, seed: int) -> int | None:
    """One ``learn(budget)`` (so the schedules run over the whole budget, as in training) with each
    library's EvalCallback + StopTrainingOnRewardThreshold: the steps at the first greedy 20-episode
    mean >= 475, or None."""
    if system.startswith("pgrl"):
        from pgrl.callbacks import EvalCallback, StopTrainingOnRewardThreshold

        eval_env = ENV_ID
    else:
        import gymnasium as gym
        from stable_baselines3.common.callbacks import EvalCallback, StopTrainingOnRewardThreshold

        eval_env = gym.make(ENV_ID)
    model = make_model(system, seed)
    evaluation = EvalCallback(eval_env, StopTrainingOnRewardThreshold(THRESHOLD), n_eval_episodes=20,
                              eval_freq=CHECK_EVERY // N_ENVS, verbose=0)  # calls: one per step of the N envs
    model.learn(budget, callback=evaluation)
    return model.num_timesteps if evaluation.best_mean_reward >= THRESHOLD else None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10_240, help="timed training steps per run")
    parser.add_argument("--warmup", type=int, default=2048, help="untimed training steps before each timing")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--seeds", type=int, default=2, help="seeds for steps-to-threshold (0: skip)")
    parser.add_argument("--budget", type=int, default=102_400)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    print(f"machine: {machine()}; date: {today()}", flush=True)
    speed: dict[str, list[float]] = {system: [] for system in SYSTEMS}
    for repeat in range(args.repeats):
        for system in SYSTEMS:
            speed[system].append(training_speed(make_model(system, repeat), args.steps, args.warmup))
            print(f"{system}: {speed[system][-1]:.0f} env steps/s", flush=True)
    reached = {}
    for system in ("pgrl", "sb3-contrib"):
        reached[system] = []
        for seed in range(args.seeds):
            reached[system].append(steps_to_threshold(system, args.budget, seed))
            print(f"{system} seed {seed}: greedy >= {THRESHOLD:.0f} at {reached[system][-1]} steps", flush=True)
    print(f"\n| system | training env steps/s (median of {args.repeats}) | steps to greedy >= 475 |")
    print("|---|---|---|")
    for system in SYSTEMS:
        steps = ", ".join(f"{s:,}" if s is not None else f"> {args.budget:,}" for s in reached.get(system, []))
        print(f"| {system} | {statistics.median(speed[system]):,.0f} | {steps or '-'} |")
    for system in SYSTEMS[:2]:
        ratio = statistics.median(speed[system]) / statistics.median(speed["sb3-contrib"])
        print(f"{system} / sb3-contrib steps/s: {ratio:.2f}x")


if __name__ == "__main__":
    main()
