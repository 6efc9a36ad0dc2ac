"""A3C: asynchronous advantage actor-critic with Hogwild! workers (Mnih et al., 2016).

``learn`` starts ``n_workers`` processes (torch.multiprocessing, spawn).  Each owns ``n_envs``
environments and a local copy of the policy, and loops without any lock:

  1. copy the shared parameters into the local model;
  2. collect n_steps x n_envs transitions with it (episodes continue across rollouts; returns stop
     at terminations and bootstrap at truncations and at the rollout's end);
  3. targets on the local model: n-step returns (gae_lambda = 1) or GAE(lambda) + V;
  4. L = -E[A log pi] + vf_coef E[(R - V)^2] - ent_coef E[H]; backward locally; clip;
  5. hand the local gradients to the shared model's ``.grad`` (every update) and step the shared
     optimizer, whose moments and step counts live in shared memory (pgrl.optim).

With ``vf_learning_rate`` actor and critic get separate shared optimizers (and separate clipping),
as in the reference chapter.  The parent only supervises: it reads one pipe per worker (episode
returns, loss metrics, errors as text), logs with the trainer's metric names, stops at the step
budget, at ``target_return`` or when the callback returns False, and on every exit (success,
error, Ctrl-C, a killed worker) ends all workers: stop flag, join, terminate, kill.  The trained
shared model stays ``self.policy``, so predict, save and ``A3C.load`` work as for every algorithm.
A3C runs on CPU; ``update`` performs one worker step in-process (the synchronous equivalent).
"""

from __future__ import annotations

import math
import os
import pickle
import signal
import time
import traceback
from collections import deque
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import torch
import torch.multiprocessing as mp
from pydantic import Field

from pgrl.algos.a2c import actor_critic_targets, advantage_actor_critic_loss
from pgrl.algos.base import Algorithm
from pgrl.algos.common import Metrics, explained_variance, flatten, normalize, set_learning_rate
from pgrl.config import AlgoConfig, Schedule, make_schedule
from pgrl.envs.make import make_env
from pgrl.envs.normalize import RewardScaler
from pgrl.errors import ConfigError, TrainingError
from pgrl.optim import SharedAdam, SharedRMSprop
from pgrl.policies.actor_critic import ActorCriticPolicy
from pgrl.rollout.collector import Collector
from pgrl.rollout.storage import Rollout

if TYPE_CHECKING:
    import gymnasium as gym

REPORT_SECONDS = 0.25  # how often a worker sends its episode returns and mean losses
STOP_GRACE_SECONDS = 3.0  # after the stop flag, before terminate (then kill): total exit < 10 s
TARGET_WINDOW = 100  # target_return is met by the mean of this many latest episodes


class A3CConfig(AlgoConfig):
    n_workers: int = Field(2, gt=0, description="worker processes (each one core)")
    n_envs: int = Field(1, gt=0, description="environments per worker")
    n_steps: int = Field(5, gt=0, description="steps of each env between two updates of a worker")
    learning_rate: Schedule = 7e-4
    vf_learning_rate: Schedule | None = Field(None, description="separate critic optimizer's rate")
    optimizer: Literal["adam", "rmsprop"] = "adam"
    vf_optimizer: Literal["adam", "rmsprop"] | None = None
    gae_lambda: float = Field(1.0, ge=0.0, le=1.0)
    ent_coef: float = Field(0.01, ge=0.0)
    vf_coef: float = Field(0.5, ge=0.0)
    normalize_advantage: bool = False
    target_return: float | None = Field(None, description="stop once the last 100 episodes average this")


def shared_optimizer(kind: str, params, lr: float) -> torch.optim.Optimizer:
    if kind == "rmsprop":
        return SharedRMSprop(params, lr=lr, alpha=0.99, eps=1e-5)
    return SharedAdam(params, lr=lr, eps=1e-5)


def a3c_loss(policy: ActorCriticPolicy, rollout: Rollout, c: A3CConfig) -> tuple[torch.Tensor, Metrics]:
    """The combined loss of one rollout, with targets from the same (local) model."""
    targets = actor_critic_targets(policy, rollout, c.gamma, c.gae_lambda)
    old_values, advantages, returns = (flatten(x) for x in targets)
    if c.normalize_advantage:
        advantages = normalize(advantages)
    log_probs, entropy, new_values = policy.evaluate(flatten(rollout.obs), flatten(rollout.actions))
    loss, pg_loss, vf_loss, ent_loss = advantage_actor_critic_loss(
        log_probs, entropy, new_values, advantages, returns, c.vf_coef, c.ent_coef
    )
    metrics: Metrics = {
        "loss/policy": pg_loss.detach(),
        "loss/value": vf_loss.detach(),
        "loss/entropy": ent_loss.detach(),
        "stats/explained_var": explained_variance(old_values, returns),
    }
    return loss, metrics


def hogwild_step(
    local: torch.nn.Module,
    shared: torch.nn.Module,
    optimizers: list,
    clip_groups: list,
    loss: torch.Tensor,
    max_grad_norm: float | None,
) -> torch.Tensor | None:
    """Backward on ``local``, clip each group, give the grads to ``shared``, step its optimizers."""
    local.zero_grad(set_to_none=True)
    loss.backward()
    norms = [torch.nn.utils.clip_grad_norm_(group, max_grad_norm) for group in clip_groups if max_grad_norm]
    if shared is not local:
        # Every update: the shared parameters' .grad is private to this process and is replaced
        # by this update's local gradient (set_to_none above makes a fresh tensor each time).
        for local_param, shared_param in zip(local.parameters(), shared.parameters(), strict=True):
            shared_param.grad = local_param.grad
    for optimizer in optimizers:
        optimizer.step()
    return torch.stack(norms).norm() if norms else None


class A3C(Algorithm):
    name = "a3c"
    config_class = A3CConfig

    def __init__(self, policy: str = "MlpPolicy", env="CartPole-v1", *, device: str | torch.device = "cpu", **kwargs):
        if str(device) not in ("cpu", "auto"):
            raise ConfigError(f"a3c workers share the model in CPU memory; use device 'cpu', not {device!r}")
        super().__init__(policy, env, device="cpu", **kwargs)

    def _setup(self) -> None:
        c = self.config
        if c.normalize:
            raise ConfigError(
                "a3c does not support normalize=True (workers would race on shared observation statistics); "
                "use a2c or ppo for normalized observations"
            )
        self.policy.share_memory()
        if c.vf_learning_rate is None:
            self.optimizers = [shared_optimizer(c.optimizer, self.policy.parameters(), self.lr_schedule(1.0))]
            return
        if self.policy.shared:
            raise ConfigError(
                "vf_learning_rate needs separate actor and critic networks; set policy_kwargs.shared=false "
                "or drop vf_learning_rate"
            )
        vf_lr = make_schedule(c.vf_learning_rate)(1.0)
        self.optimizers = [
            shared_optimizer(c.optimizer, self.policy.actor_parameters(), self.lr_schedule(1.0)),
            shared_optimizer(c.vf_optimizer or c.optimizer, self.policy.critic_parameters(), vf_lr),
        ]

    def schedules(self) -> list:
        c = self.config
        rates = [c.learning_rate] if c.vf_learning_rate is None else [c.learning_rate, c.vf_learning_rate]
        return [make_schedule(rate) for rate in rates]

    def update(self, rollout: Rollout, progress_remaining: float) -> Metrics:
        """One worker step done in this process on the shared model (no asynchrony)."""
        for optimizer, schedule in zip(self.optimizers, self.schedules(), strict=True):
            set_learning_rate(optimizer, schedule(progress_remaining))
        loss, metrics = a3c_loss(self.policy, rollout, self.config)
        if not bool(torch.isfinite(loss)):
            raise TrainingError(_nan_message(float(loss), self.num_timesteps))
        groups = [group["params"] for optimizer in self.optimizers for group in optimizer.param_groups]
        c = self.config
        norm = hogwild_step(self.policy, self.policy, self.optimizers, groups, loss, c.max_grad_norm)
        if norm is not None:
            metrics["stats/grad_norm"] = norm
        return metrics

    # -- asynchronous training ------------------------------------------------------------------
    def learn(
        self,
        total_timesteps: int | None = None,
        *,
        progress_bar: bool = False,
        log_dir: str | Path | None = None,
        callback=None,
    ) -> A3C:
        """Train with ``n_workers`` Hogwild workers for ``total_timesteps`` env steps (all workers).

        Stops at the budget, when the last 100 episodes average ``target_return``, or when
        ``callback(algo, row)`` returns False.  A worker that raises or dies ends the run with a
        TrainingError naming it; Ctrl-C propagates.  Either way every worker is gone on return.
        Workers build their own environments from the env id (with env_backend, vectorization and
        env_kwargs); a VecEnv given to the constructor only supplies the spaces.
        """
        from pgrl.logging import RunLogger

        total, c, start = self.budget(total_timesteps), self.config, self.num_timesteps
        spec = WorkerSpec(
            self.env_id,
            self.env_backend,
            self.vectorization,
            self.env_kwargs,
            c,
            self.seed,
            start,
            total,
            os.getpid(),
            self.observation_space,
            self.action_space,
        )
        worker_steps = torch.zeros(c.n_workers, dtype=torch.int64).share_memory_()  # one slot per worker
        stop_flag = torch.zeros(1, dtype=torch.uint8).share_memory_()  # lock-free, unlike an mp.Event
        logger = RunLogger(log_dir, total, progress_bar, initial_step=start)
        board = _Board(c.n_workers)
        episodes, elapsed_before = getattr(self, "num_episodes", 0), getattr(self, "train_seconds", 0.0)
        procs: list = []
        conns: list[Connection] = []
        self.worker_pids: list[int] = []
        started = time.perf_counter()
        log_every = max(1, total // 200)
        last_row_step, last_row_time = start, started
        try:
            ctx = mp.get_context("spawn")
            for rank in range(c.n_workers):
                proc, conn = _start_worker(ctx, (rank, spec, self.policy, self.optimizers, worker_steps, stop_flag))
                procs.append(proc)
                conns.append(conn)
                self.worker_pids.append(proc.pid)
            while True:
                # Sleep until a worker reports or exits (finished ones are left out: they are
                # always "ready" and would make this loop spin).
                live = [conn for rank, conn in enumerate(conns) if not board.closed[rank]]
                wait(live + [p.sentinel for p in procs if p.exitcode is None], timeout=REPORT_SECONDS)
                # Exit codes first, pipes second: whatever a worker sent before exiting is read.
                codes = [p.exitcode for p in procs]
                for rank, conn in enumerate(conns):
                    board.read(rank, conn)
                self.num_timesteps = steps = start + int(worker_steps.sum())
                board.check(codes, steps)  # raises TrainingError naming a failed or killed worker
                finished = all(code is not None for code in codes)
                if c.target_return is not None and board.recent_mean() >= c.target_return:
                    stop_flag[0] = 1
                # Rows wait for the first loss report: the CSV's columns come from the first row.
                if (steps - last_row_step >= log_every and any(board.latest)) or finished:
                    now = time.perf_counter()
                    row = board.row()
                    row["rollout/episodes"] = episodes + board.episodes
                    row["time/elapsed"] = elapsed_before + now - started
                    row["time/sps"] = (steps - last_row_step) / max(now - last_row_time, 1e-9)
                    logger.log(steps, row)
                    last_row_step, last_row_time = steps, now
                    if callback is not None and callback(self, row) is False:
                        stop_flag[0] = 1
                if finished:
                    break
        finally:
            stop_workers(procs, conns, stop_flag)
            self.num_timesteps = start + int(worker_steps.sum())
            self.num_episodes = episodes + board.episodes
            self.train_seconds = elapsed_before + time.perf_counter() - started
            self.policy.eval()
            logger.close()
        return self


def _start_worker(ctx, args: tuple) -> tuple:
    """Start one worker process; returns it and the read end of its report pipe."""
    reader, writer = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_worker, args=(*args, writer), name=f"pgrl-a3c-worker-{args[0]}", daemon=True)
    try:
        proc.start()  # spawn pickles the args here: model and optimizers in one pickle keep identity
    except (pickle.PicklingError, AttributeError, TypeError) as exc:
        reader.close()
        raise ConfigError(
            f"a3c could not send its config to a worker process ({exc}); use numbers, 'lin_<x>' "
            "strings or module-level functions for schedules"
        ) from None
    finally:
        writer.close()  # the parent keeps only the read end: EOF means the worker is gone
    return proc, reader


def _nan_message(value: float, step: int) -> str:
    return f"a3c loss became {value} at step {step}; lower learning_rate or max_grad_norm, or turn on normalize_reward"


def _mean(values) -> float:
    return float(sum(values) / len(values)) if values else math.nan


def stop_workers(
    procs: list, conns: list[Connection], stop_flag: torch.Tensor, grace: float = STOP_GRACE_SECONDS
) -> None:
    """Raise the stop flag, let workers finish their update, then terminate and kill what is left."""
    stop_flag[0] = 1
    deadline = time.monotonic() + grace
    while any(p.is_alive() for p in procs) and time.monotonic() < deadline:
        for conn in conns:  # keep the pipes empty so that no worker blocks in send
            _discard(conn)
        wait([p.sentinel for p in procs if p.is_alive()], timeout=0.05)
    for proc in procs:
        for end in (proc.terminate, proc.kill):
            if proc.is_alive():
                end()
                proc.join(1.0)
        proc.join(0)  # reaps the process, so no zombie is left
    for conn in conns:
        conn.close()


def _discard(conn: Connection) -> None:
    try:
        while not conn.closed and conn.poll():
            conn.recv()
    except (EOFError, OSError):
        pass


class _Board:
    """What the parent knows of each worker: status, latest metrics, error text; recent episodes."""

    def __init__(self, n_workers: int):
        self.ready = [False] * n_workers
        self.closed = [False] * n_workers
        self.errors: list[tuple[str, str] | None] = [None] * n_workers
        self.latest: list[dict[str, float]] = [{} for _ in range(n_workers)]
        self.returns: deque[float] = deque(maxlen=TARGET_WINDOW)
        self.lengths: deque[int] = deque(maxlen=TARGET_WINDOW)
        self.episodes = 0

    def read(self, rank: int, conn: Connection) -> None:
        try:
            while not self.closed[rank] and conn.poll():
                kind, *payload = conn.recv()
                if kind == "ready":
                    self.ready[rank] = True
                elif kind == "stats":
                    episode_returns, episode_lengths, self.latest[rank] = payload
                    self.returns.extend(episode_returns)
                    self.lengths.extend(episode_lengths)
                    self.episodes += len(episode_returns)
                elif kind == "error":
                    self.errors[rank] = (payload[0], payload[1])
        except (EOFError, OSError):  # the worker closed its end or died mid-message
            self.closed[rank] = True

    def recent_mean(self) -> float:
        """Mean return of the last TARGET_WINDOW episodes; nan until there are that many."""
        return _mean(self.returns) if len(self.returns) == TARGET_WINDOW else math.nan

    def check(self, exitcodes: list[int | None], step: int) -> None:
        for rank, code in enumerate(exitcodes):
            if self.errors[rank] is not None:
                summary, details = self.errors[rank]
                error = TrainingError(f"a3c worker {rank} failed at step {step}: {summary}")
                error.add_note(f"worker {rank} traceback:\n{details}")
                raise error
            if code is None or code == 0:  # running, or finished (status 0 only after its last report)
                continue
            if code < 0:
                try:
                    how = f"killed by signal {-code}, {signal.Signals(-code).name}"
                except ValueError:
                    how = f"killed by signal {-code}"
            else:
                how = f"exited with status {code}"
            hint = (
                ""
                if self.ready[rank]
                else (
                    " before it started; if you run a script, put the training code under "
                    "`if __name__ == '__main__':` (workers are started with the spawn method)"
                )
            )
            raise TrainingError(f"a3c worker {rank} died ({how}) at step {step}{hint}")

    def row(self) -> dict[str, float]:
        """Losses averaged over the workers' latest reports, and the recent episode stats."""
        keys = sorted({key for latest in self.latest for key in latest})
        row = {key: _mean([m[key] for m in self.latest if key in m]) for key in keys}
        row["rollout/ep_return_mean"] = _mean(self.returns)
        row["rollout/ep_length_mean"] = _mean(self.lengths)
        return row


# -- the worker process -------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkerSpec:
    env_id: str
    env_backend: str
    vectorization: str
    env_kwargs: dict | None
    config: A3CConfig
    seed: int
    start_step: int
    total_timesteps: int
    parent_pid: int
    observation_space: gym.Space
    action_space: gym.Space


class _Tally:
    """Episode stats and summed metrics since the last report to the parent."""

    def __init__(self):
        self.returns: list[float] = []
        self.lengths: list[int] = []
        self.sums: dict[str, torch.Tensor] = {}
        self.updates, self.since = 0, time.monotonic()

    def add(self, rollout: Rollout, metrics: Metrics) -> None:
        self.returns += rollout.episode_returns
        self.lengths += rollout.episode_lengths
        for key, value in metrics.items():
            self.sums[key] = self.sums.get(key, 0.0) + value
        self.updates += 1

    def message(self) -> tuple:
        means = {key: float(value) / max(self.updates, 1) for key, value in self.sums.items()}
        return ("stats", self.returns, self.lengths, means)


def _worker(
    rank: int,
    spec: WorkerSpec,
    shared: ActorCriticPolicy,
    optimizers: list,
    worker_steps: torch.Tensor,
    stop_flag: torch.Tensor,
    conn: Connection,
) -> None:
    # One intra-op thread: each worker is already one busy process per core, and torch's default
    # (one thread per core in *every* process) would oversubscribe the CPU n_workers-fold for
    # matrices this small, making every worker slower.
    torch.set_num_threads(1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's: it stops the workers
    env = None
    try:
        c = spec.config
        seed = spec.seed * 1000 + rank * c.n_envs  # env i of this worker gets seed + i
        torch.manual_seed(seed)
        env = make_env(
            spec.env_id,
            c.n_envs,
            backend=spec.env_backend,
            vectorization=spec.vectorization,
            device="cpu",
            env_kwargs=spec.env_kwargs,
        )
        local = ActorCriticPolicy(spec.observation_space, spec.action_space, **c.policy_kwargs.model_dump())
        local.load_state_dict(shared.state_dict())
        scaler = RewardScaler(c.n_envs, c.gamma, clip=c.clip_reward or 10.0) if c.normalize_reward else None
        collector = Collector(env, local, None, scaler, sde_sample_freq=c.sde_sample_freq, clip_reward=c.clip_reward)
        collector.reset(seed=seed)
        to_local = {id(p): q for p, q in zip(shared.parameters(), local.parameters(), strict=True)}
        clip_groups = [[to_local[id(p)] for g in opt.param_groups for p in g["params"]] for opt in optimizers]
        rates = [c.learning_rate] if c.vf_learning_rate is None else [c.learning_rate, c.vf_learning_rate]
        schedules = [make_schedule(rate) for rate in rates]
        pairs = list(zip(local.parameters(), shared.parameters(), strict=True))
        end_step = spec.start_step + spec.total_timesteps
        conn.send(("ready",))
        tally = _Tally()
        while not bool(stop_flag[0]) and os.getppid() == spec.parent_pid:
            done = spec.start_step + int(worker_steps.sum())
            if done >= end_step:
                break
            progress_remaining = max(0.0, 1.0 - (done - spec.start_step) / spec.total_timesteps)
            for optimizer, schedule in zip(optimizers, schedules, strict=True):
                set_learning_rate(optimizer, schedule(progress_remaining))
            with torch.no_grad():
                for local_param, shared_param in pairs:
                    local_param.copy_(shared_param)
            rollout = collector.collect(c.n_steps)
            loss, metrics = a3c_loss(local, rollout, c)
            if not bool(torch.isfinite(loss)):
                raise TrainingError(_nan_message(float(loss), done))
            norm = hogwild_step(local, shared, optimizers, clip_groups, loss, c.max_grad_norm)
            if norm is not None:
                metrics["stats/grad_norm"] = norm
            metrics["train/learning_rate"] = optimizers[0].param_groups[0]["lr"]
            worker_steps[rank] += rollout.n_steps * rollout.num_envs  # only this worker writes its slot
            tally.add(rollout, metrics)
            if time.monotonic() - tally.since >= REPORT_SECONDS:
                conn.send(tally.message())
                tally = _Tally()
        conn.send(tally.message())
    except BaseException as exc:  # noqa: BLE001 - reported to the parent as text, then exit 1
        try:
            conn.send(("error", f"{type(exc).__name__}: {exc}", traceback.format_exc()))
        except (OSError, ValueError):
            pass
        raise SystemExit(1) from None
    finally:
        if env is not None:
            env.close()
        conn.close()


__all__ = ["A3C", "A3CConfig", "a3c_loss", "hogwild_step", "shared_optimizer", "stop_workers"]
