"""The synchronous runner: collect -> check -> update -> row -> checkpoint, until the budget.

The trainer never knows which loss it runs: the algorithm's ``update`` does, on whatever the
collector (local or Ray actors) returned; the collector's own metrics (``ray/*``) join the row.

Non-finite values stop the run with a TrainingError naming the quantity and the step: the
observations and rewards of a rollout are checked once per rollout (on the stored tensors, so
the per-step loop stays free of host syncs), gradients and parameters once per update, losses
by the algorithms (``check_finite``).  No checkpoint is written after such a failure.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from pgrl.envs.base import masks_allow_an_action
from pgrl.errors import EnvError, TrainingError
from pgrl.loops.collection import collect, collector_for, rollout_steps_taken
from pgrl.loops.rows import RunLog
from pgrl.obs import all_finite
from pgrl.rollout.collector import Collector


def train(algo, total_timesteps: int, *, log_dir: str | Path | None = None, progress_bar: bool = False,
          callback=None, checkpointer=None, resume_state: dict[str, Any] | None = None, log_rows: int = 200) -> None:
    """Train until ``start_step + total_timesteps`` (start_step: now, or the resumed run's start)."""
    log = RunLog(algo, total_timesteps, log_dir=log_dir, progress_bar=progress_bar, callback=callback,
                 checkpointer=checkpointer, resume_state=resume_state, log_rows=log_rows)
    collector = collector_for(algo)
    steps_here = algo.env.num_envs if isinstance(collector, Collector) else None  # Ray's: no per-step hook
    algo.policy.train()
    try:
        while not log.done:
            on_step = log.rollout_start(steps_here)
            rollout = collect(algo, on_step)
            steps = rollout_steps_taken(algo, rollout)  # one host sync in "episodes" mode, none otherwise
            if not log.rollout_end(steps, rollout.stopped):
                break  # a callback stopped training: no update on this rollout (as SB3)
            check_rollout(algo, rollout)
            metrics = algo.update(rollout, log.progress_remaining())
            check_gradients(algo)
            algo.num_timesteps += steps
            log.add_episodes(rollout.episode_returns, rollout.episode_lengths)
            metrics.update(collector.metrics())
            if not log.step(metrics):
                break
        log.end_training()
    finally:
        algo.policy.eval()
        log.close()


def check_rollout(algo, rollout) -> None:
    """One host sync per rollout: stop when an observation or reward is NaN or infinite."""
    checks = {
        "observations": all_finite(rollout.obs),
        "rewards": torch.isfinite(rollout.rewards).all(),
        "next observations": all_finite(rollout.next_obs if rollout.next_obs is not None else rollout.obs),
    }
    if rollout.action_masks is not None:  # the only check of tensor envs' masks; Gymnasium envs' were checked per step
        checks["masks"] = masks_allow_an_action(rollout.action_masks, getattr(algo.policy, "nvec", None))
    flags = torch.stack(list(checks.values())).tolist()
    if all(flags):
        return
    quantity = next(name for name, ok in zip(checks, flags, strict=True) if not ok)
    if quantity == "masks":
        raise EnvError(f"{algo.env_id} gave an action mask that allows no action in the rollout ending at step "
                       f"{algo.num_timesteps + rollout_steps_taken(algo, rollout)}; every state needs at least one "
                       "valid action")
    raise TrainingError(
        f"{algo.name} got non-finite {quantity} from {algo.env_id} in the rollout ending at step "
        f"{algo.num_timesteps + rollout_steps_taken(algo, rollout)}; check the environment "
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


__all__ = ["check_gradients", "check_rollout", "train"]
