"""The Hogwild runner: worker processes train one shared model without locks (A3C).

``train`` starts ``config.n_workers`` processes (torch.multiprocessing, spawn), each with
``config.n_envs`` environments made from ``algo.env_source`` (an env id, with env_backend,
vectorization and env_kwargs, or a picklable factory; an env instance cannot be shared, and is
refused) and a local copy of the policy.  A worker loops: copy the shared parameters into its local model, collect
``n_steps x n_envs`` transitions, and call the algorithm's ``worker_update(local, shared,
optimizers, clip_groups, rollout, config, progress_remaining, step)``, which steps the shared
optimizers (``algo.optimizer_list()``, state in shared memory).  The runner never knows the loss.

The parent only supervises: it reads one pipe per worker (episode returns, mean metrics, errors
as text) into the ``_Board``, and feeds RunLog, which writes rows, calls the callback, stops at
``target_return`` and writes checkpoints (of the shared model and the shared optimizer state,
read while workers write them: Hogwild tolerates that, and the file is written atomically).
On every exit (success, error, Ctrl-C, a killed worker) all workers end: stop flag, join,
terminate, kill.  Workers poll ``os.getppid()``, so a killed parent leaves none behind.

Worker seeds: env i of worker w gets ``seed * 1000 + w * n_envs + i + step`` (``step``: where
this call starts; 0 for a fresh model), so a resumed run starts fresh episodes.
"""

from __future__ import annotations

import copy
import os
import pickle
import signal
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

import torch
import torch.multiprocessing as mp

from pgrl.envs.make import to_vec_env
from pgrl.envs.normalize import RewardScaler
from pgrl.errors import ConfigError, TrainingError
from pgrl.loops.rows import RunLog, mean_or_nan
from pgrl.rollout.collector import Collector

REPORT_SECONDS = 0.25  # how often a worker sends its episode returns and mean metrics
STOP_GRACE_SECONDS = 3.0  # after the stop flag, before terminate (then kill): total exit < 10 s


def train(algo, total_timesteps: int, *, log_dir: str | Path | None = None, progress_bar: bool = False,
          callback=None, checkpointer=None, resume_state: dict[str, Any] | None = None, log_rows: int = 200) -> None:
    """Train ``algo`` with ``config.n_workers`` Hogwild workers until ``start_step + total_timesteps``.

    Stops at the budget, at ``config.target_return`` (mean of the last 100 episodes) or when the
    callback returns False.  A worker that raises or dies ends the run with a TrainingError
    naming it; Ctrl-C propagates.  Either way every worker is gone on return.
    """
    c = algo.config
    if algo.env_source is None:
        raise ConfigError(f"{algo.name} workers make their own envs, which an env instance or vector env cannot "
                          "give them; pass an env id or a module-level function returning the env")
    log = RunLog(algo, total_timesteps, log_dir=log_dir, progress_bar=progress_bar, callback=callback,
                 checkpointer=checkpointer, resume_state=resume_state, log_rows=log_rows,
                 target_return=getattr(c, "target_return", None))
    launch_step = algo.num_timesteps
    optimizers = algo.optimizer_list()
    spec = WorkerSpec(algo.env_source, algo.env_backend, algo.vectorization, algo.env_kwargs, c, algo.seed,
                      launch_step, log.start_step, log.target, os.getpid(), type(algo).worker_update)
    worker_steps = torch.zeros(c.n_workers, dtype=torch.int64).share_memory_()  # one slot per worker
    stop_flag = torch.zeros(1, dtype=torch.uint8).share_memory_()  # lock-free, unlike an mp.Event
    board = _Board(algo.name, c.n_workers)
    procs: list = []
    conns: list[Connection] = []
    algo.worker_pids = []
    stopping = False
    try:
        ctx = mp.get_context("spawn")
        for rank in range(c.n_workers):
            proc, conn = _start_worker(ctx, algo.name, (rank, spec, algo.policy, optimizers, worker_steps, stop_flag))
            procs.append(proc)
            conns.append(conn)
            algo.worker_pids.append(proc.pid)
        while True:
            # Sleep until a worker reports or exits (finished ones are left out: they are
            # always "ready" and would make this loop spin).
            live = [conn for rank, conn in enumerate(conns) if not board.closed[rank]]
            wait(live + [p.sentinel for p in procs if p.exitcode is None], timeout=REPORT_SECONDS)
            # Exit codes first, pipes second: whatever a worker sent before exiting is read.
            codes = [p.exitcode for p in procs]
            for rank, conn in enumerate(conns):
                board.read(rank, conn)
            algo.num_timesteps = launch_step + int(worker_steps.sum())
            board.check(codes, algo.num_timesteps)  # raises TrainingError naming a failed or killed worker
            log.add_episodes(*board.take_episodes())
            finished = all(code is not None for code in codes)
            # Rows wait for the first metrics report: the CSV's columns come from the first row.
            metrics = board.metrics() if any(board.latest) else None
            if finished:
                log.step(metrics, final=True)
                log.end_training()
                break
            # A callback's _on_step runs once per report here: the envs step in the workers.
            log.rollout_start(None)
            keep_going = log.rollout_end(0)
            # After a stop (or at the budget, where workers stop by themselves) only the final row
            # and checkpoint are left, once every worker has exited.
            if not stopping and (log.done or not keep_going or not log.step(metrics)):
                stopping = True
                stop_flag[0] = 1
    finally:
        stop_workers(procs, conns, stop_flag)
        algo.num_timesteps = launch_step + int(worker_steps.sum())
        algo.policy.eval()
        log.close()


def _start_worker(ctx, name: str, args: tuple) -> tuple:
    """Start one worker process; returns it and the read end of its report pipe."""
    reader, writer = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_worker, args=(*args, writer), name=f"pgrl-{name}-worker-{args[0]}", daemon=True)
    try:
        proc.start()  # spawn pickles the args here: model and optimizers in one pickle keep identity
    except (pickle.PicklingError, AttributeError, TypeError) as exc:
        reader.close()
        raise ConfigError(
            f"{name} could not send its config to a worker process ({exc}); use numbers, 'lin_<x>' "
            "strings or module-level functions for schedules and env factories"
        ) from None
    finally:
        writer.close()  # the parent keeps only the read end: EOF means the worker is gone
    return proc, reader


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
    """What the parent knows of each worker: status, latest metrics, error text; new episodes."""

    def __init__(self, name: str, n_workers: int):
        self.name = name
        self.ready = [False] * n_workers
        self.closed = [False] * n_workers
        self.errors: list[tuple[str, str] | None] = [None] * n_workers
        self.latest: list[dict[str, float]] = [{} for _ in range(n_workers)]
        self.returns: list[float] = []
        self.lengths: list[int] = []

    def read(self, rank: int, conn: Connection) -> None:
        try:
            while not self.closed[rank] and conn.poll():
                kind, *payload = conn.recv()
                if kind == "ready":
                    self.ready[rank] = True
                elif kind == "stats":
                    episode_returns, episode_lengths, self.latest[rank] = payload
                    self.returns += episode_returns
                    self.lengths += episode_lengths
                elif kind == "error":
                    self.errors[rank] = (payload[0], payload[1])
        except (EOFError, OSError):  # the worker closed its end or died mid-message
            self.closed[rank] = True

    def take_episodes(self) -> tuple[list[float], list[int]]:
        """Episodes reported since the last call."""
        episodes = self.returns, self.lengths
        self.returns, self.lengths = [], []
        return episodes

    def check(self, exitcodes: list[int | None], step: int) -> None:
        for rank, code in enumerate(exitcodes):
            if self.errors[rank] is not None:
                summary, details = self.errors[rank]
                error = TrainingError(f"{self.name} worker {rank} failed at step {step}: {summary}")
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
            raise TrainingError(f"{self.name} worker {rank} died ({how}) at step {step}{hint}")

    def metrics(self) -> dict[str, float]:
        """Metrics averaged over the workers' latest reports."""
        keys = sorted({key for latest in self.latest for key in latest})
        return {key: mean_or_nan([m[key] for m in self.latest if key in m]) for key in keys}


# -- the worker process -------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkerSpec:
    env_source: Any  # an env id or a picklable factory (Algorithm.env_source)
    env_backend: str
    vectorization: str
    env_kwargs: dict | None
    config: Any
    seed: int
    launch_step: int  # algo.num_timesteps when the workers started
    start_step: int  # where the run (and its schedules) started, before any resume
    target_step: int  # the run stops here
    parent_pid: int
    update: Callable  # the algorithm's worker_update


class _Tally:
    """Episode stats and summed metrics since the last report to the parent."""

    def __init__(self):
        self.returns: list[float] = []
        self.lengths: list[int] = []
        self.sums: dict[str, torch.Tensor] = {}
        self.updates, self.since = 0, time.monotonic()

    def add(self, rollout, metrics) -> None:
        self.returns += rollout.episode_returns
        self.lengths += rollout.episode_lengths
        for key, value in metrics.items():
            self.sums[key] = self.sums.get(key, 0.0) + value
        self.updates += 1

    def message(self) -> tuple:
        means = {key: float(value) / max(self.updates, 1) for key, value in self.sums.items()}
        return ("stats", self.returns, self.lengths, means)


def _worker(rank: int, spec: WorkerSpec, shared: torch.nn.Module, optimizers: list, worker_steps: torch.Tensor,
            stop_flag: torch.Tensor, conn: Connection) -> None:
    # One intra-op thread: each worker is already one busy process per core, and torch's default
    # (one thread per core in *every* process) would oversubscribe the CPU n_workers-fold for
    # matrices this small, making every worker slower.
    torch.set_num_threads(1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's: it stops the workers
    env = None
    try:
        c = spec.config
        seed = spec.seed * 1000 + rank * c.n_envs + spec.launch_step  # env i of this worker gets seed + i
        torch.manual_seed(seed)
        env = to_vec_env(spec.env_source, c.n_envs, backend=spec.env_backend, vectorization=spec.vectorization,
                         device="cpu", env_kwargs=spec.env_kwargs)
        local = copy.deepcopy(shared)  # private tensors: Parameter's deepcopy clones the storage
        scaler = RewardScaler(c.n_envs, c.gamma, clip=c.clip_reward or 10.0) if c.normalize_reward else None
        collector = Collector(env, local, None, scaler, sde_sample_freq=c.sde_sample_freq, clip_reward=c.clip_reward)
        collector.reset(seed=seed)
        to_local = {id(p): q for p, q in zip(shared.parameters(), local.parameters(), strict=True)}
        clip_groups = [[to_local[id(p)] for g in opt.param_groups for p in g["params"]] for opt in optimizers]
        pairs = list(zip(local.parameters(), shared.parameters(), strict=True))
        budget = spec.target_step - spec.start_step
        conn.send(("ready",))
        tally = _Tally()
        while not bool(stop_flag[0]) and os.getppid() == spec.parent_pid:
            done = spec.launch_step + int(worker_steps.sum())
            if done >= spec.target_step:
                break
            with torch.no_grad():
                for local_param, shared_param in pairs:
                    local_param.copy_(shared_param)
            rollout = collector.collect(c.n_steps)
            progress_remaining = max(0.0, 1.0 - (done - spec.start_step) / budget)
            metrics = spec.update(local, shared, optimizers, clip_groups, rollout, c, progress_remaining, done)
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


__all__ = ["REPORT_SECONDS", "STOP_GRACE_SECONDS", "stop_workers", "train"]
