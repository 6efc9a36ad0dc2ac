"""Asynchronous A3C on Ray: gradient actors, one learner that applies gradients as they arrive.

Each of the K actors owns M envs and a policy copy.  One call ``compute(weights, version)``
loads the weights the learner sent, collects n_steps x M transitions (episodes continue), and
returns the gradient of A3C's own loss (``pgrl.algos.a3c.a3c_loss``: n-step or GAE targets
from the same weights, clipped per optimizer group as the Hogwild workers do) tagged with the
weights' version.  The learner waits for whichever gradient comes first (``ray.wait``),
applies it with the model's optimizers (Adam or RMSprop, one learner: no shared memory
needed), then puts the fresh weights into the object store once and sends that reference to
every actor whose gradient it just took.

Staleness = learner version now - version the gradient was computed at (each applied gradient
is one version).  With K workers it is about K - 1.  A gradient staler than ``max_staleness``
(default 2 x K) is dropped, not applied (its env steps still count toward the budget, since
they were taken); the worker gets fresh weights.  Logged per row: ``async/staleness_mean`` and
``async/staleness_max`` of the applied gradients, ``async/dropped`` (total), ``ray/restarts``.

A lost actor (killed, crashed node) is restarted by Ray and its call sent again with the
newest weights; no gradient is lost silently.  Stops at the budget, at ``target_return`` (mean
of the last 100 training episodes) or when the callback returns False.  Like in-process a3c,
it writes no checkpoints.
"""

from __future__ import annotations

import math
import time
from collections import deque
from pathlib import Path

import torch

from pgrl.algos.common import set_learning_rate
from pgrl.distributed.collector import worker_spec
from pgrl.distributed.pool import WorkerGroup
from pgrl.distributed.workers import Gradients, GradientWorker
from pgrl.errors import TrainingError

TARGET_WINDOW = 100
WAIT_S = 0.25


def weights_of(model) -> dict:
    return {"policy": {k: v.detach().cpu().clone() for k, v in model.policy.state_dict().items()}}


class _Rows:
    """Metrics since the last row, and the running counters."""

    def __init__(self):
        self.sums: dict[str, float] = {}
        self.keys: list[str] = []
        self.updates = 0
        self.staleness: list[int] = []

    def add(self, metrics: dict[str, float], staleness: int) -> None:
        for key, value in metrics.items():
            self.sums[key] = self.sums.get(key, 0.0) + value
            if key not in self.keys:
                self.keys.append(key)
        self.updates += 1
        self.staleness.append(staleness)

    def take(self) -> dict[str, float]:
        row = {key: self.sums.get(key, math.nan) / max(self.updates, 1) for key in self.keys}
        row["async/staleness_mean"] = sum(self.staleness) / len(self.staleness) if self.staleness else math.nan
        row["async/staleness_max"] = float(max(self.staleness)) if self.staleness else math.nan
        self.sums, self.updates, self.staleness = {}, 0, []
        return row


def learn_a3c(model, ray, max_staleness: int, total_timesteps: int | None = None, *, progress_bar: bool = False,
              log_dir: str | Path | None = None, callback=None):
    """Train ``model`` (an A3C) with ``model.config.n_workers`` Ray actors; see the module docstring."""
    from pgrl.logging import RunLogger

    total, c, start = model.budget(total_timesteps), model.config, model.num_timesteps
    target = start + total
    params = list(model.policy.parameters())
    schedules = model.schedules()
    logger = RunLogger(log_dir, total, progress_bar, initial_step=start)
    returns: deque[float] = deque(maxlen=TARGET_WINDOW)
    lengths: deque[int] = deque(maxlen=TARGET_WINDOW)
    episodes, elapsed_before = getattr(model, "num_episodes", 0), getattr(model, "train_seconds", 0.0)
    log_every = max(1, total // 200)
    rows = _Rows()
    version, dropped, steps = 0, 0, start
    started = time.perf_counter()
    last_row_step, last_row_time = start, started
    group = None
    model.policy.train()
    try:
        group = WorkerGroup(ray, GradientWorker, worker_spec(model, c.n_envs), c.n_workers, "a3c")
        model.worker_pids = list(group.pids)
        weights = ray.put(weights_of(model))
        pending = {group.submit(rank, "compute", weights, version) for rank in range(c.n_workers)}
        stop = False
        while pending and not stop:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=WAIT_S)
            if ready:  # take every gradient that has arrived, not only the first
                ready, _ = ray.wait(list(pending), num_returns=len(pending), timeout=0)
            answered: list[int] = []
            for ref in ready:
                pending.discard(ref)
                try:
                    result: Gradients = ray.get(ref)
                except group.actor_errors as exc:
                    rank = group.forget(ref)
                    group.record_loss(rank, exc)
                    answered.append(rank)  # sent again below, with the newest weights
                    continue
                except group.task_errors as exc:
                    group.raise_task_error(ref, exc)
                answered.append(group.answered(ref))
                staleness = version - result.version
                if staleness > max_staleness:
                    dropped += 1
                else:
                    progress_remaining = max(0.0, 1.0 - (steps - start) / total)
                    for optimizer, schedule in zip(model.optimizers, schedules, strict=True):
                        set_learning_rate(optimizer, schedule(progress_remaining))
                    for param, grad in zip(params, result.grads, strict=True):
                        param.grad = grad
                    for optimizer in model.optimizers:
                        optimizer.step()
                    version += 1
                    result.metrics["train/learning_rate"] = model.optimizers[0].param_groups[0]["lr"]
                    rows.add(result.metrics, staleness)
                steps += result.steps
                returns.extend(result.episode_returns)
                lengths.extend(result.episode_lengths)
                episodes += len(result.episode_returns)
            model.num_timesteps = steps
            if steps >= target:
                stop = True
            if c.target_return is not None and len(returns) == TARGET_WINDOW and _mean(returns) >= c.target_return:
                stop = True
            if (steps - last_row_step >= log_every and rows.keys) or (stop and rows.keys):
                now = time.perf_counter()
                row = rows.take()
                row.update({
                    "async/dropped": float(dropped),
                    "ray/restarts": float(group.restarts),
                    "rollout/ep_return_mean": _mean(returns),
                    "rollout/ep_length_mean": _mean(lengths),
                    "rollout/episodes": episodes,
                    "time/elapsed": elapsed_before + now - started,
                    "time/sps": (steps - last_row_step) / max(now - last_row_time, 1e-9),
                })
                logger.log(steps, row)
                last_row_step, last_row_time = steps, now
                if callback is not None and callback(model, row) is False:
                    stop = True
            if not stop and answered:
                if not all(torch.isfinite(p).all() for p in params):
                    raise TrainingError(f"a3c parameters became non-finite at step {steps}; lower learning_rate "
                                        "or max_grad_norm, or turn on normalize_reward")
                weights = ray.put(weights_of(model))  # once, for every actor that answered
                pending.update(group.submit(rank, "compute", weights, version) for rank in answered)
    finally:
        if group is not None:
            group.close()
        model.num_timesteps = steps
        model.num_episodes = episodes
        model.train_seconds = elapsed_before + time.perf_counter() - started
        model.async_stats = {"version": version, "dropped": dropped,
                             "restarts": group.restarts if group is not None else 0}
        model.policy.eval()
        logger.close()
    return model


def _mean(values) -> float:
    return float(sum(values) / len(values)) if values else math.nan
