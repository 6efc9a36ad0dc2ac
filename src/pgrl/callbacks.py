"""Stable-Baselines3's callback API for ``learn(callback=...)``.

``learn`` takes a ``BaseCallback`` subclass, a ``CallbackList`` or a list of callbacks, or a plain
callable ``callback(model, row)`` called with each metrics row (pgrl's own form, used by
``pgrl compare`` and the benchmarks; returning False stops training).

Hooks, in SB3's order: ``_on_training_start``; then per iteration ``_on_rollout_start``,
``_on_step`` after every step of the vector env (``n_calls`` += 1, ``num_timesteps`` += n_envs;
returning False stops training at once, before the update), ``_on_rollout_end``; finally
``_on_training_end``.  ``self.locals`` holds the step's tensors (``rewards``, ``dones``,
``terminated``, ``truncated``) and ``self.logger.record(key, value)`` adds a column to the next
metrics row.  Where envs are not stepped in this process (A3C's workers, Ray actors) ``_on_step``
runs once per report or rollout instead, with ``num_timesteps`` advanced by what was collected.
A run without a per-step callback pays nothing per step: the hook is not installed.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from pgrl.errors import ConfigError


class RowLogger:
    """SB3's ``logger.record``: values recorded between two rows join the next row."""

    def __init__(self):
        self.pending: dict[str, float] = {}

    def record(self, key: str, value: Any, exclude=None) -> None:
        self.pending[key] = value

    def record_mean(self, key: str, value: Any, exclude=None) -> None:
        self.pending[key] = value

    def take(self) -> dict[str, float]:
        taken, self.pending = self.pending, {}
        return taken


class BaseCallback:
    """Override the ``_on_*`` hooks; ``_on_step`` returning False stops training."""

    #: whether ``_on_step`` must run after every env step (False: rows and rollouts only)
    needs_steps = True

    def __init__(self, verbose: int = 0):
        self.verbose = verbose
        self.model = None
        self.training_env = None
        self.n_calls = 0
        self.num_timesteps = 0
        self.locals: dict[str, Any] = {}
        self.globals: dict[str, Any] = {}
        self.logger: RowLogger = RowLogger()
        self.parent: BaseCallback | None = None

    # -- called by the runners ------------------------------------------------------------------
    def init_callback(self, model, logger: RowLogger | None = None) -> None:
        self.model, self.training_env = model, model.env
        self.num_timesteps = model.num_timesteps
        if logger is not None:
            self.logger = logger
        self._init_callback()

    def on_training_start(self, locals_: dict[str, Any], globals_: dict[str, Any]) -> None:
        self.locals, self.globals = locals_, globals_
        self.num_timesteps = self.model.num_timesteps
        self._on_training_start()

    def on_rollout_start(self) -> None:
        self.num_timesteps = self.model.num_timesteps
        self._on_rollout_start()

    def on_step(self) -> bool:
        self.n_calls += 1
        return self._on_step() is not False

    def on_rollout_end(self) -> None:
        self._on_rollout_end()

    def on_training_end(self) -> None:
        self._on_training_end()

    def on_row(self, row: dict[str, float]) -> bool:
        """After each metrics row (pgrl's own hook); False stops training."""
        return True

    def update_locals(self, locals_: dict[str, Any]) -> None:
        self.locals.update(locals_)

    # -- to override ------------------------------------------------------------------------------
    def _init_callback(self) -> None:
        pass

    def _on_training_start(self) -> None:
        pass

    def _on_rollout_start(self) -> None:
        pass

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        pass

    def _on_training_end(self) -> None:
        pass


class RowCallback(BaseCallback):
    """A plain ``callback(model, row)``, called with each metrics row."""

    needs_steps = False

    def __init__(self, function):
        super().__init__()
        self.function = function

    def on_row(self, row: dict[str, float]) -> bool:
        return self.function(self.model, row) is not False


class CallbackList(BaseCallback):
    """Several callbacks, called in order; training stops when any ``_on_step`` says False."""

    def __init__(self, callbacks: list):
        super().__init__()
        self.callbacks = [as_callback(c) for c in callbacks]
        self.needs_steps = any(c.needs_steps for c in self.callbacks)

    def init_callback(self, model, logger: RowLogger | None = None) -> None:
        super().init_callback(model, logger)
        for callback in self.callbacks:
            callback.init_callback(model, self.logger)

    def on_training_start(self, locals_, globals_) -> None:
        for callback in self.callbacks:
            callback.on_training_start(locals_, globals_)

    def on_rollout_start(self) -> None:
        for callback in self.callbacks:
            callback.on_rollout_start()

    def on_step(self) -> bool:
        keep_going = True
        for callback in self.callbacks:
            callback.num_timesteps, callback.locals = self.num_timesteps, self.locals
            keep_going = callback.on_step() and keep_going
        return keep_going

    def on_rollout_end(self) -> None:
        for callback in self.callbacks:
            callback.on_rollout_end()

    def on_training_end(self) -> None:
        for callback in self.callbacks:
            callback.on_training_end()

    def on_row(self, row) -> bool:
        return all([callback.on_row(row) for callback in self.callbacks])


def as_callback(callback) -> BaseCallback | None:
    """None, a BaseCallback, a list of callbacks, or a plain ``callback(model, row)``."""
    if callback is None or isinstance(callback, BaseCallback):
        return callback
    if isinstance(callback, list | tuple):
        return CallbackList(list(callback))
    if callable(callback):
        return RowCallback(callback)
    raise ConfigError(
        f"callback must be a pgrl.callbacks.BaseCallback, a list of them or a function (model, row), "
        f"not {type(callback).__name__}"
    )


# -- the callbacks SB3 ships ------------------------------------------------------------------------


class EventCallback(BaseCallback):
    """Calls a child callback (``callback``) when its event fires."""

    def __init__(self, callback: BaseCallback | None = None, verbose: int = 0):
        super().__init__(verbose)
        self.callback = callback
        if callback is not None:
            callback.parent = self

    def init_callback(self, model, logger: RowLogger | None = None) -> None:
        super().init_callback(model, logger)
        if self.callback is not None:
            self.callback.init_callback(model, self.logger)

    def _on_event(self) -> bool:
        if self.callback is None:
            return True
        self.callback.num_timesteps = self.num_timesteps
        return self.callback.on_step()


class EveryNTimesteps(EventCallback):
    """Trigger ``callback`` every ``n_steps`` env steps."""

    def __init__(self, n_steps: int, callback: BaseCallback):
        super().__init__(callback)
        self.n_steps, self.last_time_trigger = int(n_steps), 0

    def _on_step(self) -> bool:
        if self.num_timesteps - self.last_time_trigger >= self.n_steps:
            self.last_time_trigger = self.num_timesteps
            return self._on_event()
        return True


class CheckpointCallback(BaseCallback):
    """Save the model every ``save_freq`` calls to ``save_path/{name_prefix}_{steps}_steps.safetensors``."""

    def __init__(self, save_freq: int, save_path: str | Path, name_prefix: str = "rl_model", verbose: int = 0):
        super().__init__(verbose)
        if save_freq < 1:
            raise ConfigError(f"CheckpointCallback save_freq must be at least 1, got {save_freq}")
        self.save_freq, self.save_path, self.name_prefix = int(save_freq), Path(save_path), name_prefix

    def _on_step(self) -> bool:
        if self.n_calls % self.save_freq == 0:
            path = self.model.save(self.save_path / f"{self.name_prefix}_{self.num_timesteps}_steps")
            if self.verbose >= 2:
                print(f"Saving model checkpoint to {path}")
        return True


class EvalCallback(EventCallback):
    """Every ``eval_freq`` calls, evaluate greedily on ``eval_env`` for ``n_eval_episodes``.

    Keeps ``last_mean_reward`` and ``best_mean_reward``; a new best is saved to
    ``best_model_save_path/best_model.safetensors`` and triggers ``callback_on_new_best``
    (False from it stops training); ``callback_after_eval`` runs after every evaluation.
    ``log_path`` gets evaluations.npz (timesteps, results, ep_lengths) as SB3 writes it.
    Evaluation time is not counted as training time.
    """

    def __init__(self, eval_env, callback_on_new_best: BaseCallback | None = None,
                 callback_after_eval: BaseCallback | None = None, n_eval_episodes: int = 5, eval_freq: int = 10000,
                 log_path: str | Path | None = None, best_model_save_path: str | Path | None = None,
                 deterministic: bool = True, render: bool = False, verbose: int = 1, warn: bool = True):
        super().__init__(callback_after_eval, verbose)
        if eval_freq < 1 or n_eval_episodes < 1:
            raise ConfigError("EvalCallback needs eval_freq >= 1 and n_eval_episodes >= 1")
        self.eval_env, self.n_eval_episodes, self.eval_freq = eval_env, int(n_eval_episodes), int(eval_freq)
        self.callback_on_new_best = callback_on_new_best
        if callback_on_new_best is not None:
            callback_on_new_best.parent = self
        self.deterministic = deterministic
        self.best_model_save_path = Path(best_model_save_path) if best_model_save_path is not None else None
        self.log_path = Path(log_path) / "evaluations.npz" if log_path is not None else None
        self.best_mean_reward, self.last_mean_reward = -math.inf, -math.inf
        self.evaluations_timesteps: list[int] = []
        self.evaluations_results: list[list[float]] = []
        self.evaluations_length: list[list[int]] = []

    def init_callback(self, model, logger: RowLogger | None = None) -> None:
        super().init_callback(model, logger)
        if self.callback_on_new_best is not None:
            self.callback_on_new_best.init_callback(model, self.logger)

    def _on_step(self) -> bool:
        if self.n_calls % self.eval_freq != 0:
            return True
        from pgrl.evaluation import evaluate_policy

        returns, lengths = evaluate_policy(self.model, self.eval_env, self.n_eval_episodes,
                                           deterministic=self.deterministic, return_episode_rewards=True)
        mean = float(np.mean(returns))
        self.last_mean_reward = mean
        self.logger.record("eval/mean_reward", mean)
        self.logger.record("eval/mean_ep_length", float(np.mean(lengths)))
        self.evaluations_timesteps.append(self.num_timesteps)
        self.evaluations_results.append(list(returns))
        self.evaluations_length.append(list(lengths))
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            np.savez(self.log_path, timesteps=np.array(self.evaluations_timesteps),
                     results=np.array(self.evaluations_results), ep_lengths=np.array(self.evaluations_length))
        if self.verbose >= 1:
            print(f"Eval num_timesteps={self.num_timesteps}, episode_reward={mean:.2f} +/- {np.std(returns):.2f}")
        keep_going = True
        if mean > self.best_mean_reward:
            self.best_mean_reward = mean
            if self.best_model_save_path is not None:
                self.model.save(self.best_model_save_path / "best_model")
            if self.callback_on_new_best is not None:
                self.callback_on_new_best.num_timesteps = self.num_timesteps
                keep_going = self.callback_on_new_best.on_step()
        return self._on_event() and keep_going


class StopTrainingOnRewardThreshold(BaseCallback):
    """For EvalCallback's ``callback_on_new_best``: stop once the best mean reward reaches the threshold."""

    def __init__(self, reward_threshold: float, verbose: int = 0):
        super().__init__(verbose)
        self.reward_threshold = float(reward_threshold)

    def _on_step(self) -> bool:
        if not isinstance(self.parent, EvalCallback):
            raise ConfigError("StopTrainingOnRewardThreshold goes into EvalCallback(callback_on_new_best=...)")
        keep_going = self.parent.best_mean_reward < self.reward_threshold
        if not keep_going and self.verbose >= 1:
            print(f"Stopping training: the mean reward {self.parent.best_mean_reward:.2f} reached "
                  f"the threshold {self.reward_threshold}")
        return keep_going


class StopTrainingOnNoModelImprovement(BaseCallback):
    """For EvalCallback's ``callback_after_eval``: stop after ``max_no_improvement_evals``
    evaluations without a new best (counting from evaluation ``min_evals``)."""

    def __init__(self, max_no_improvement_evals: int, min_evals: int = 0, verbose: int = 0):
        super().__init__(verbose)
        self.max_no_improvement_evals, self.min_evals = int(max_no_improvement_evals), int(min_evals)
        self.last_best, self.no_improvement = -math.inf, 0

    def _on_step(self) -> bool:
        if not isinstance(self.parent, EvalCallback):
            raise ConfigError("StopTrainingOnNoModelImprovement goes into EvalCallback(callback_after_eval=...)")
        if self.n_calls > self.min_evals:
            improved = self.parent.best_mean_reward > self.last_best
            self.no_improvement = 0 if improved else self.no_improvement + 1
        self.last_best = self.parent.best_mean_reward
        keep_going = self.no_improvement <= self.max_no_improvement_evals
        if not keep_going and self.verbose >= 1:
            print(f"Stopping training: no new best model in the last {self.no_improvement} evaluations")
        return keep_going


class StepTimer:
    """Wraps a callback's per-step hook for a runner: counts steps, fills ``locals``, and reports
    the seconds spent inside the callback (left out of training time)."""

    def __init__(self, callback: BaseCallback, steps_per_call: int):
        self.callback, self.steps_per_call, self.seconds = callback, steps_per_call, 0.0

    def __call__(self, step) -> bool:
        started = time.perf_counter()
        callback = self.callback
        callback.num_timesteps += self.steps_per_call
        callback.update_locals({"rewards": step.rewards, "terminated": step.terminated,
                                "truncated": step.truncated, "dones": step.terminated | step.truncated})
        keep_going = callback.on_step()
        self.seconds += time.perf_counter() - started
        return keep_going


__all__ = [
    "BaseCallback",
    "CallbackList",
    "CheckpointCallback",
    "EvalCallback",
    "EventCallback",
    "EveryNTimesteps",
    "StopTrainingOnNoModelImprovement",
    "StopTrainingOnRewardThreshold",
    "as_callback",
]
