"""The one synchronous training loop: collect -> check -> update -> log -> checkpoint.

The trainer never knows which loss it runs: the algorithm's ``collect`` and ``update`` do.
Time spent in the callback (evaluations, say) and in writing checkpoints is not counted as
training time.  Metrics stay tensors until a row is written (at most ``log_rows`` rows per
run), so an algorithm that updates every step does not pay a host sync every step.

Non-finite values stop the run with a TrainingError naming the quantity and the step: the
observations and rewards of a rollout are checked once per rollout (on the stored tensors, so
the per-step loop stays free of host syncs), gradients and parameters once per update, losses
by the algorithms (``check_finite``).  No checkpoint is written after such a failure.

A checkpointer (``pgrl.checkpoint.Checkpointer``) gets ``trainer_state()`` after each update:
where the run started and its budget (for the schedules' progress), when the last row was
written, the recent episode statistics and the episode count, so a resumed run writes the
same rows as an uninterrupted one.
"""

from __future__ import annotations

import math
import time
from collections import deque
from pathlib import Path
from typing import Any

import torch

from pgrl.errors import TrainingError
from pgrl.logging import RunLogger


class Trainer:
    def __init__(
        self,
        algo,
        log_dir: str | Path | None = None,
        progress_bar: bool = False,
        callback=None,
        log_rows: int = 200,
        checkpointer=None,
        resume_state: dict[str, Any] | None = None,
    ):
        self.algo, self.log_dir, self.progress_bar, self.callback = algo, log_dir, progress_bar, callback
        self.log_rows, self.checkpointer, self.resume_state = log_rows, checkpointer, resume_state

    def run(self, total_timesteps: int) -> None:
        """Train until ``start_step + total_timesteps`` (start_step: now, or the resumed run's start)."""
        algo = self.algo
        state = self.resume_state or {}
        start_step = int(state.get("start_step", algo.num_timesteps))
        target = start_step + total_timesteps
        log_every = max(1, total_timesteps // self.log_rows)
        resumed_at = algo.num_timesteps if state else None
        logger = RunLogger(
            self.log_dir, target - algo.num_timesteps, self.progress_bar, initial_step=algo.num_timesteps,
            purge_step=None if resumed_at is None else resumed_at + 1,
        )
        recent_returns: deque[float] = deque(state.get("recent_returns", []), maxlen=100)
        recent_lengths: deque[int] = deque(state.get("recent_lengths", []), maxlen=100)
        episodes = getattr(algo, "num_episodes", 0)
        elapsed_before = getattr(algo, "train_seconds", 0.0)
        started = time.perf_counter()
        last_row_step = int(state.get("last_row_step", start_step - log_every))
        last_row_time, last_row_at = started, algo.num_timesteps
        paused = 0.0  # seconds spent in callbacks and checkpoints

        def trainer_state() -> dict[str, Any]:
            return {
                "start_step": start_step,
                "total_timesteps": total_timesteps,
                "last_row_step": last_row_step,
                "recent_returns": list(recent_returns),
                "recent_lengths": list(recent_lengths),
            }

        algo.policy.train()
        try:
            while algo.num_timesteps < target:
                rollout = algo.collect()
                check_rollout(algo, rollout)
                steps = (
                    rollout.n_steps * rollout.num_envs
                    if algo.rollout_mode == "steps"
                    else int(rollout.valid.sum())
                )
                progress_remaining = max(0.0, 1.0 - (algo.num_timesteps - start_step) / total_timesteps)
                metrics = algo.update(rollout, progress_remaining)
                check_gradients(algo)
                algo.num_timesteps += steps
                recent_returns.extend(rollout.episode_returns)
                recent_lengths.extend(rollout.episode_lengths)
                episodes += len(rollout.episode_returns)
                done = algo.num_timesteps >= target
                keep_going = True
                if algo.num_timesteps - last_row_step >= log_every or done:
                    now = time.perf_counter()
                    row = {key: float(value) for key, value in metrics.items()}
                    row.update(
                        {
                            "rollout/ep_return_mean": _mean(recent_returns),
                            "rollout/ep_length_mean": _mean(recent_lengths),
                            "rollout/episodes": episodes,
                            "time/elapsed": elapsed_before + now - started - paused,
                            "time/sps": (algo.num_timesteps - last_row_at) / max(now - last_row_time, 1e-9),
                        }
                    )
                    logger.log(algo.num_timesteps, row)
                    last_row_step, last_row_time, last_row_at = algo.num_timesteps, now, algo.num_timesteps
                    if self.callback is not None:
                        keep_going = self.callback(algo, row) is not False
                        spent = time.perf_counter() - now
                        paused += spent
                        last_row_time += spent
                if self.checkpointer is not None and self.checkpointer.due(
                    algo.num_timesteps, final=done or not keep_going
                ):
                    now = time.perf_counter()
                    algo.num_episodes = episodes
                    algo.train_seconds = elapsed_before + now - started - paused
                    self.checkpointer.save(algo, trainer_state())
                    spent = time.perf_counter() - now
                    paused += spent
                    last_row_time += spent
                if not keep_going:
                    break
        finally:
            algo.num_episodes = episodes
            algo.train_seconds = elapsed_before + time.perf_counter() - started - paused
            algo.policy.eval()
            logger.close()


def check_rollout(algo, rollout) -> None:
    """One host sync per rollout: stop when an observation or reward is NaN or infinite."""
    checks = {
        "observations": torch.isfinite(rollout.obs).all(),
        "rewards": torch.isfinite(rollout.rewards).all(),
        "next observations": torch.isfinite(rollout.next_obs).all(),
    }
    flags = torch.stack(list(checks.values())).tolist()
    if all(flags):
        return
    quantity = next(name for name, ok in zip(checks, flags, strict=True) if not ok)
    steps = rollout.n_steps * rollout.num_envs if algo.rollout_mode == "steps" else int(rollout.valid.sum())
    raise TrainingError(
        f"{algo.name} got non-finite {quantity} from {algo.env_id} in the rollout ending at step "
        f"{algo.num_timesteps + steps}; check the environment "
        "(or turn on normalize) and resume from the last checkpoint"
    )


def check_gradients(algo) -> None:
    """One host sync per update: the last gradients and all parameters must be finite.

    A non-finite gradient of an earlier minibatch shows up as non-finite parameters, since
    clipping and the optimizers' steps carry it into every parameter it touched.
    """
    grads = [
        p.grad
        for optimizer in algo.optimizers().values()
        for group in optimizer.param_groups
        for p in group["params"]
        if p.grad is not None
    ]
    params = [p.detach() for p in algo.policy.parameters()]
    # NaN and inf propagate through the sums: one number per group, one host copy for both
    grad_sum = torch.stack(torch._foreach_norm(grads)).sum() if grads else torch.zeros(())
    param_sum = torch.stack(torch._foreach_norm(params)).sum()
    grad_value, param_value = torch.stack([grad_sum.float(), param_sum.float()]).tolist()
    if not math.isfinite(grad_value):
        raise TrainingError(
            f"{algo.name} gradient norm became {grad_value} at step {algo.num_timesteps}; "
            "lower learning_rate or max_grad_norm, or turn on normalize / normalize_reward"
        )
    if not math.isfinite(param_value):
        raise TrainingError(
            f"{algo.name} parameters became non-finite at step {algo.num_timesteps} (a non-finite gradient); "
            "lower learning_rate or max_grad_norm, or turn on normalize / normalize_reward"
        )


def _mean(values) -> float:
    return float(sum(values) / len(values)) if values else math.nan


__all__ = ["Trainer", "check_gradients", "check_rollout"]
