"""The one synchronous training loop: collect -> update -> log.

The trainer never knows which loss it runs: the algorithm's ``collect`` and ``update`` do.
Time spent in the callback (evaluations, say) is not counted as training time.
Metrics stay tensors until a row is written (at most ``log_rows`` rows per run), so an
algorithm that updates every step does not pay a host sync every step.
"""

from __future__ import annotations

import math
import time
from collections import deque
from pathlib import Path

import torch

from pgrl.logging import RunLogger


class Trainer:
    def __init__(
        self,
        algo,
        log_dir: str | Path | None = None,
        progress_bar: bool = False,
        callback=None,
        log_rows: int = 200,
    ):
        self.algo, self.log_dir, self.progress_bar, self.callback = algo, log_dir, progress_bar, callback
        self.log_rows = log_rows

    def run(self, total_timesteps: int) -> None:
        algo = self.algo
        start_step = algo.num_timesteps
        target = start_step + total_timesteps
        log_every = max(1, total_timesteps // self.log_rows)
        logger = RunLogger(self.log_dir, total_timesteps, self.progress_bar, initial_step=start_step)
        recent_returns: deque[float] = deque(maxlen=100)
        recent_lengths: deque[int] = deque(maxlen=100)
        episodes = getattr(algo, "num_episodes", 0)
        elapsed_before = getattr(algo, "train_seconds", 0.0)
        started = time.perf_counter()
        last_row_step, last_row_time, last_row_at = start_step - log_every, started, start_step
        paused = 0.0  # seconds spent in callbacks
        algo.policy.train()
        try:
            while algo.num_timesteps < target:
                rollout = algo.collect()
                steps = (
                    rollout.n_steps * rollout.num_envs
                    if algo.rollout_mode == "steps"
                    else int(rollout.valid.sum())
                )
                progress_remaining = max(0.0, 1.0 - (algo.num_timesteps - start_step) / total_timesteps)
                metrics = algo.update(rollout, progress_remaining)
                algo.num_timesteps += steps
                recent_returns.extend(rollout.episode_returns)
                recent_lengths.extend(rollout.episode_lengths)
                episodes += len(rollout.episode_returns)
                done = algo.num_timesteps >= target
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
                        if not keep_going:
                            break
        finally:
            algo.num_episodes = episodes
            algo.train_seconds = elapsed_before + time.perf_counter() - started - paused
            algo.policy.eval()
            logger.close()


def _mean(values) -> float:
    return float(sum(values) / len(values)) if values else math.nan


__all__ = ["Trainer", "torch"]
