"""Helpers shared by the benchmark scripts: machine description and time-to-solve measurement."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import torch

import pgrl


def machine() -> str:
    from pgrl.report import machine_description

    return f"{machine_description()}, torch {torch.__version__}, {torch.get_num_threads()} torch thread(s)"


def today() -> str:
    return time.strftime("%Y-%m-%d")


def training_speed(model, steps: int, warmup: int = 2048) -> float:
    """Env steps/s of ``model.learn(steps)`` after a ``warmup``-step learn (first calls, allocation);
    any SB3-style model with ``learn(n, reset_num_timesteps=False)``."""
    model.learn(warmup)
    start = time.perf_counter()
    model.learn(steps, reset_num_timesteps=False)
    return steps / (time.perf_counter() - start)


def steps_to_reach(model, evaluate, threshold: float, budget: int, every: int) -> int | None:
    """Env steps until ``evaluate(model)`` first reaches ``threshold``, checked every ``every``
    steps (one learn call per chunk, schedules included), None within ``budget``."""
    done = 0
    while done < budget:
        model.learn(every, reset_num_timesteps=False)
        done += every
        if evaluate(model) >= threshold:
            return done
    return None


@dataclass
class SolveResult:
    solved: bool
    steps: int  # env steps when the greedy evaluation first reached the threshold (or the budget)
    seconds: float  # training seconds up to then (evaluations excluded)
    final_return: float


def train_to_threshold(
    model,
    env_id: str,
    threshold: float,
    budget: int,
    eval_every: int,
    n_eval: int = 100,
    eval_backend: str = "auto",
    log_dir=None,
    stop: bool = True,
) -> SolveResult:
    """Train until a greedy n_eval-episode mean reaches ``threshold`` (checked every ``eval_every`` steps).

    The evaluations run inside the trainer's callback, whose time is not counted as training.
    """
    state = {
        "next": eval_every,
        "solved": False,
        "steps": budget,
        "seconds": float("nan"),
        "last": float("nan"),
    }

    def check(algo, row):
        if algo.num_timesteps < state["next"]:
            return True
        state["next"] = algo.num_timesteps + eval_every
        mean, _ = pgrl.evaluate_policy(algo, env_id, n_eval, backend=eval_backend)
        state["last"] = mean
        if mean >= threshold and not state["solved"]:
            state.update(solved=True, steps=algo.num_timesteps, seconds=row["time/elapsed"])
            return not stop
        return True

    model.learn(budget, callback=check, log_dir=log_dir)
    if not stop:  # trained to the budget: report the final model
        state["last"], _ = pgrl.evaluate_policy(model, env_id, n_eval, backend=eval_backend)
    if not state["solved"]:
        state["seconds"] = model.train_seconds
        state["last"], _ = pgrl.evaluate_policy(model, env_id, n_eval, backend=eval_backend)
        state["steps"] = model.num_timesteps
        if state["last"] >= threshold:
            state["solved"] = True
    return SolveResult(state["solved"], state["steps"], state["seconds"], state["last"])


def median(values):
    values = [v for v in values if v == v]
    return statistics.median(values) if values else float("nan")
