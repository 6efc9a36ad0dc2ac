"""A group of Ray actors of one kind, with restarts: no call is lost when an actor dies.

Actors are created with ``max_restarts=MAX_RESTARTS`` (and ``max_task_retries=0``: pgrl, not
Ray, decides what to send again).  When a call fails because its actor died or became
unavailable (``RayActorError``: ``ActorDiedError``, ``ActorUnavailableError``), the same call
is sent again; Ray queues it until the restarted actor is up.  Each death is counted once
(``restarts``, logged as ``ray/restarts``; the calls that fail while the actor is still coming
back are not new deaths) and announced with a ``WorkerRestartWarning``.  An actor lost more than
MAX_RESTARTS times, one that does not answer after RECOVERY_TRIES tries, or a call that raises
inside the actor ends the run with a TrainingError naming the worker.
"""

from __future__ import annotations

import time
import warnings
from typing import Any

from pgrl.errors import ConfigError, PGRLError, TrainingError

MAX_RESTARTS = 3  # per actor
RECOVERY_TRIES = 40  # calls sent to a lost actor before giving up (about 30 s with the back-off)
START_TIMEOUT_S = 120.0  # for every actor to build its env and answer (imports included)


class WorkerRestartWarning(RuntimeWarning):
    """A Ray worker died and was restarted; its lost work is done again."""


class WorkerGroup:
    def __init__(self, ray, worker_cls, spec, num_workers: int, kind: str):
        from ray.exceptions import GetTimeoutError, RayActorError, RayTaskError

        self.ray, self.kind = ray, kind
        self.actor_errors, self.task_errors, self._timeout = RayActorError, RayTaskError, GetTimeoutError
        actor_cls = ray.remote(num_cpus=1, max_restarts=MAX_RESTARTS, max_task_retries=0)(worker_cls)
        self.actors = [actor_cls.remote(spec, rank) for rank in range(num_workers)]
        self.calls: dict[Any, tuple[int, str, tuple]] = {}
        self.lost = [0] * num_workers  # deaths per actor
        self.recovering = [0] * num_workers  # failed calls since the actor's last answer (0: healthy)
        self.restarts = 0
        try:
            self.pids = self.get_all([self.submit(rank, "pid") for rank in range(num_workers)],
                                     timeout=START_TIMEOUT_S)
        except BaseException:
            self.close()
            raise

    def submit(self, rank: int, method: str, *args) -> Any:
        ref = getattr(self.actors[rank], method).remote(*args)
        self.calls[ref] = (rank, method, args)
        return ref

    def get(self, ref, timeout: float | None = None) -> Any:
        """The result of ``ref``; a call lost with its actor is sent again, as often as needed."""
        while True:
            try:
                value = self.ray.get(ref, timeout=timeout)
            except self.actor_errors as exc:
                rank, method, args = self.calls[ref]
                self.forget(ref)
                self.record_loss(rank, exc)
                ref = self.submit(rank, method, *args)
                continue
            except self.task_errors as exc:
                self.raise_task_error(ref, exc)
            except self._timeout:
                raise ConfigError(
                    f"ray {self.kind} workers did not start within {timeout:.0f} s; check `ray status` "
                    "(free CPUs, pgrl installed on every node)"
                ) from None
            self.answered(ref)
            return value

    def forget(self, ref) -> int:
        """Stop tracking ``ref``; returns the rank of its actor."""
        return self.calls.pop(ref)[0]

    def answered(self, ref) -> int:
        """``ref`` returned a result: its actor is healthy (again); returns its rank."""
        rank = self.forget(ref)
        self.recovering[rank] = 0
        return rank

    def raise_task_error(self, ref, exc: BaseException):
        """A call raised inside its actor: end the run with one sentence naming the worker."""
        rank = self.forget(ref)
        cause = exc.cause if getattr(exc, "cause", None) is not None else exc
        if isinstance(cause, PGRLError):
            raise type(cause)(f"ray {self.kind} worker {rank}: {cause}") from None
        text = (str(cause).strip().splitlines() or [""])[-1][:200]
        raise TrainingError(f"ray {self.kind} worker {rank} failed: {type(cause).__name__}: {text}") from None

    def get_all(self, refs: list, timeout: float | None = None) -> list[Any]:
        deadline = None if timeout is None else time.monotonic() + timeout
        return [self.get(ref, None if deadline is None else max(0.1, deadline - time.monotonic())) for ref in refs]

    def record_loss(self, rank: int, exc: BaseException) -> None:
        """A call to actor ``rank`` failed with a RayActorError: count a death (once), or give up."""
        logs = "check its logs under /tmp/ray/session_latest/logs"
        if self.recovering[rank] == 0:  # it answered before: a new death
            self.lost[rank] += 1
            self.restarts += 1
            if self.lost[rank] > MAX_RESTARTS:
                raise TrainingError(
                    f"ray {self.kind} worker {rank} died {self.lost[rank]} times (more than the {MAX_RESTARTS} "
                    f"restarts allowed; last: {type(exc).__name__}); {logs}"
                ) from None
            warnings.warn(
                f"ray {self.kind} worker {rank} was lost ({type(exc).__name__}); Ray restarts it "
                f"({self.lost[rank]} of {MAX_RESTARTS}) and its work is done again",
                WorkerRestartWarning,
                stacklevel=3,
            )
        self.recovering[rank] += 1
        if self.recovering[rank] > RECOVERY_TRIES:
            raise TrainingError(
                f"ray {self.kind} worker {rank} did not come back after it was lost "
                f"({type(exc).__name__}, {RECOVERY_TRIES} tries); {logs}"
            ) from None
        time.sleep(min(1.0, 0.05 * self.recovering[rank]))  # let Ray notice before the call goes out again

    def close(self) -> None:
        """Kill every actor (calls in flight die with it); the group is unusable afterwards."""
        self.calls.clear()
        for actor in self.actors:
            try:
                self.ray.kill(actor, no_restart=True)
            except Exception:  # noqa: BLE001 - the actor or the cluster may be gone already
                pass
        self.actors = []
