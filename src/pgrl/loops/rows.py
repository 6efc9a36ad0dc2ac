"""RunLog: the one place a training run's metric rows are made, whatever the runner.

A row holds the algorithm's metrics, the recent episode window (rollout/ep_return_mean,
rollout/ep_length_mean over the last ``window`` episodes, rollout/episodes), time/elapsed
(training seconds: time in callbacks and checkpoints is left out) and time/sps.  At most
``log_rows`` rows per run are written, so an algorithm that updates every step does not pay a
host sync every step: metrics stay tensors until a row is due.  RunLog also holds the budget
(start step, target, progress remaining), calls the callback with each row (False stops the
run), stops at ``target_return``, and writes checkpoints when they are due.

The callback (pgrl.callbacks: SB3's BaseCallback objects, lists of them, or a plain
``callback(model, row)``) is driven from here too: training start and end, rollout start and
end, the per-step hook a collector calls (``rollout_start`` returns it, None when no callback
needs steps), and each row (``on_row``); values a callback records join the next row.

Runners (pgrl.loops.trainer, pgrl.loops.hogwild, pgrl.distributed.a3c, pgrl.batched) do::

    log = RunLog(algo, total_timesteps, log_dir=..., callback=..., checkpointer=..., resume_state=...)
    while not log.done:
        on_step = log.rollout_start(n_envs)   # the callback's per-step hook, or None
        ...                                   # train; algo.num_timesteps grows
        log.add_episodes(returns, lengths)
        if not log.step(metrics):             # row, callback, checkpoint when due
            break
    log.end_training()                        # after a normal end: the callback's _on_training_end
    log.close()                               # in a finally: counters back on algo, logger closed

``state()`` is what a checkpoint stores so that a resumed run writes the same rows as an
uninterrupted one.
"""

from __future__ import annotations

import math
import time
from collections import deque
from pathlib import Path
from typing import Any

from pgrl.callbacks import RowLogger, StepTimer, as_callback
from pgrl.logging import RunLogger


class RunLog:
    def __init__(self, algo, total_timesteps: int, *, log_dir: str | Path | None = None, progress_bar: bool = False,
                 callback=None, checkpointer=None, resume_state: dict[str, Any] | None = None, log_rows: int = 200,
                 window: int = 100, target_return: float | None = None):
        self.algo, self.checkpointer = algo, checkpointer
        self.callback, self.recorded = as_callback(callback), RowLogger()
        self._timer: StepTimer | None = None
        self.target_return, self.window = target_return, window
        state = resume_state or {}
        self.start_step = int(state.get("start_step", algo.num_timesteps))
        self.total = int(total_timesteps)
        self.target = self.start_step + self.total
        self.log_every = max(1, self.total // log_rows)
        resumed_at = algo.num_timesteps if state else None
        self.logger = RunLogger(log_dir, self.target - algo.num_timesteps, progress_bar,
                                initial_step=algo.num_timesteps,
                                purge_step=None if resumed_at is None else resumed_at + 1)
        self.returns: deque[float] = deque(state.get("recent_returns", []), maxlen=window)
        self.lengths: deque[int] = deque(state.get("recent_lengths", []), maxlen=window)
        self.episodes = algo.num_episodes
        self.elapsed_before = algo.train_seconds
        self.started = time.perf_counter()
        self.last_row_step = int(state.get("last_row_step", self.start_step - self.log_every))
        self.last_row_time, self.last_row_at = self.started, algo.num_timesteps
        self.paused = 0.0  # seconds spent in callbacks and checkpoints
        if self.callback is not None:
            self.callback.init_callback(algo, self.recorded)
            self.callback.on_training_start({"total_timesteps": self.total}, {})

    # -- budget ---------------------------------------------------------------------------------
    @property
    def done(self) -> bool:
        return self.algo.num_timesteps >= self.target

    def progress_remaining(self, step: int | None = None) -> float:
        """1 at the run's start, 0 at its budget (what schedules take)."""
        step = self.algo.num_timesteps if step is None else step
        return max(0.0, 1.0 - (step - self.start_step) / self.total)

    # -- episodes -------------------------------------------------------------------------------
    def add_episodes(self, returns: list[float], lengths: list[int]) -> None:
        self.returns.extend(returns)
        self.lengths.extend(lengths)
        self.episodes += len(returns)

    def recent_mean(self) -> float:
        """Mean return of the last ``window`` episodes; nan until there are that many."""
        return mean_or_nan(self.returns) if len(self.returns) == self.window else math.nan

    # -- callback hooks ---------------------------------------------------------------------------
    def rollout_start(self, steps_per_call: int | None) -> StepTimer | None:
        """Before a rollout: the callback's _on_rollout_start; returns the per-step hook the
        collector calls after each step of ``steps_per_call`` env steps (None: nothing per step,
        or this collector steps no envs here)."""
        callback = self.callback
        self._timer = None
        if callback is None:
            return None
        since = time.perf_counter()
        callback.on_rollout_start()
        self._pause(since)
        if callback.needs_steps and steps_per_call:
            self._timer = StepTimer(callback, steps_per_call)
        return self._timer

    def rollout_end(self, steps: int, stopped: bool = False) -> bool:
        """After a rollout of ``steps`` env steps: _on_step once if no per-step hook ran (Ray,
        worker processes), then _on_rollout_end.  False: a callback asked to stop."""
        callback = self.callback
        if callback is None:
            return True
        since = time.perf_counter()
        keep_going = not stopped
        if self._timer is None and callback.needs_steps:
            callback.num_timesteps = self.algo.num_timesteps + steps
            keep_going = callback.on_step() and keep_going
        callback.on_rollout_end()
        self._pause(since)
        if self._timer is not None:
            self.paused += self._timer.seconds
            self.last_row_time += self._timer.seconds
            self._timer = None
        return keep_going

    def end_training(self) -> None:
        if self.callback is not None:
            self.callback.on_training_end()

    # -- rows -----------------------------------------------------------------------------------
    def elapsed(self, now: float | None = None) -> float:
        return self.elapsed_before + (time.perf_counter() if now is None else now) - self.started - self.paused

    def row(self, metrics: dict[str, Any], now: float) -> dict[str, float]:
        algo = self.algo
        row = {key: float(value) for key, value in {**metrics, **self.recorded.take()}.items()}
        row.update({
            "rollout/ep_return_mean": mean_or_nan(self.returns),
            "rollout/ep_length_mean": mean_or_nan(self.lengths),
            "rollout/episodes": self.episodes,
            "time/elapsed": self.elapsed(now),
            "time/sps": (algo.num_timesteps - self.last_row_at) / max(now - self.last_row_time, 1e-9),
        })
        return row

    def step(self, metrics: dict[str, Any] | None, *, final: bool = False) -> bool:
        """After an update: write a row when one is due (``metrics`` None: not yet, unless final),
        call the callback, write a checkpoint when due.  False: stop (callback or target_return)."""
        step = self.algo.num_timesteps
        final = final or step >= self.target
        keep_going = not (self.target_return is not None and self.recent_mean() >= self.target_return)
        if (metrics is not None and step - self.last_row_step >= self.log_every) or final:
            now = time.perf_counter()
            row = self.row(metrics or {}, now)
            self.logger.log(step, row)
            self.last_row_step, self.last_row_time, self.last_row_at = step, now, step
            if self.callback is not None:
                keep_going = self.callback.on_row(row) and keep_going
                self._pause(now)
        if self.checkpointer is not None and self.checkpointer.due(step, final=final or not keep_going):
            now = time.perf_counter()
            self.sync()
            self.checkpointer.save(self.algo, self.state())
            self._pause(now)
        return keep_going

    def _pause(self, since: float) -> None:
        spent = time.perf_counter() - since
        self.paused += spent
        self.last_row_time += spent

    # -- state ----------------------------------------------------------------------------------
    def sync(self) -> None:
        """Put the episode count and training seconds on the algorithm (checkpoints and summaries read them)."""
        self.algo.num_episodes = self.episodes
        self.algo.train_seconds = self.elapsed()

    def state(self) -> dict[str, Any]:
        return {
            "start_step": self.start_step,
            "total_timesteps": self.total,
            "last_row_step": self.last_row_step,
            "recent_returns": list(self.returns),
            "recent_lengths": list(self.lengths),
        }

    def close(self) -> None:
        self.sync()
        self.logger.close()


def mean_or_nan(values) -> float:
    """The mean of a sequence of numbers; nan when it is empty (a row before any episode ended)."""
    return float(sum(values) / len(values)) if values else math.nan
