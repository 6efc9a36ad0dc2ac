"""Starting, joining and always leaving a Ray cluster; the options of ``--backend ray``.

``ray`` is an optional dependency (``pip install "pgrl[ray]"``): nothing here imports it at
module level, so ``pgrl`` works without it and ``--backend ray`` fails with one sentence.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

from pgrl.errors import ConfigError

CONNECT_TIMEOUT_S = 3.0  # TCP probe of --address before Ray is asked to join
JOIN_TIMEOUT_S = 3  # seconds ray.init may try to reach the head's GCS (Ray's default: about 20)
GCS_WAIT_VARIABLE = "RAY_gcs_server_port_wait_time_s"  # read by ray.init when it connects


def import_ray():
    """The ray module, or a ConfigError telling how to install it."""
    try:
        import ray
    except ImportError:
        raise ConfigError(
            '--backend ray needs Ray, which is not installed; install it with pip install "pgrl[ray]"'
        ) from None
    return ray


@dataclass(frozen=True)
class RayOptions:
    """Where and how wide a run goes on Ray.

    num_workers: rollout actors (synchronous algorithms) or gradient actors (a3c).
    envs_per_worker: environments each actor steps (None: the config's n_envs split over the
    workers for synchronous algorithms, the config's n_envs for a3c, whose n_envs is per worker).
    address: HOST:PORT of a running cluster's head (``ray start --head``); None starts Ray
    inside the run and stops it at the end.
    max_staleness: a3c only; gradients computed on weights more than this many learner updates
    old are dropped (None: 2 x num_workers).
    """

    num_workers: int = 2
    envs_per_worker: int | None = None
    address: str | None = None
    max_staleness: int | None = None

    def __post_init__(self):
        if not isinstance(self.num_workers, int) or self.num_workers < 1:
            raise ConfigError(f"--num-workers must be at least 1, got {self.num_workers}")
        if self.envs_per_worker is not None and self.envs_per_worker < 1:
            raise ConfigError(f"--envs-per-worker must be at least 1, got {self.envs_per_worker}")
        if self.max_staleness is not None and self.max_staleness < 0:
            raise ConfigError(f"--max-staleness must be 0 or more, got {self.max_staleness}")
        if self.address is not None:
            parse_address(self.address)

    @property
    def staleness_bound(self) -> int:
        return self.max_staleness if self.max_staleness is not None else 2 * self.num_workers

    def to_json(self) -> dict[str, Any]:
        return {"backend": "ray", **asdict(self)}


def options_from_flags(backend: str, num_workers: int | None, envs_per_worker: int | None,
                       address: str | None, max_staleness: int | None) -> RayOptions | None:
    """RayOptions for ``--backend ray``, None for the local backend (whose runs take no Ray flag)."""
    if backend not in ("local", "ray"):
        raise ConfigError(f"unknown backend '{backend}'; use local or ray")
    flags = {"--num-workers": num_workers, "--envs-per-worker": envs_per_worker, "--address": address,
             "--max-staleness": max_staleness}
    if backend == "local":
        given = [name for name, value in flags.items() if value is not None]
        if given:
            raise ConfigError(f"{given[0]} only applies to --backend ray; add --backend ray or drop it")
        return None
    options = RayOptions(num_workers if num_workers is not None else 2, envs_per_worker, address, max_staleness)
    import_ray()  # fail now, before any work, when the extra is missing
    if address is not None:
        probe_address(address)
    return options


def ray_algorithms() -> list[str]:
    """Algorithms the Ray backend runs: rollout actors (synchronous ones) or gradient actors (a3c)."""
    from pgrl.algos import ALGORITHMS

    return [name for name, cls in ALGORITHMS.items() if cls.capabilities.ray is not None]


def check_algorithm(algo_name: str, options: RayOptions) -> None:
    from pgrl.algos import ALGORITHMS

    cls = ALGORITHMS[algo_name]
    if cls.capabilities.ray is None:
        hint = "use a2c (n-step batches) instead" if cls.rollout_mode == "steps" else "run it with --backend local"
        raise ConfigError(
            f"{algo_name} cannot run on --backend ray (it supports {', '.join(ray_algorithms())}); {hint}"
        )
    if options.max_staleness is not None and cls.capabilities.ray != "gradients":
        gradient_algos = [n for n, c in ALGORITHMS.items() if c.capabilities.ray == "gradients"]
        raise ConfigError(f"--max-staleness applies to {', '.join(gradient_algos)} only, not {algo_name}; drop it")


def parse_address(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(
            f"--address must be HOST:PORT of a Ray head (e.g. 127.0.0.1:6379), got '{address}'"
        )
    return host.strip("[]"), int(port)


def probe_address(address: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Fail within ``timeout`` seconds when nothing listens at ``address``."""
    host, port = parse_address(address)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or type(exc).__name__).lower()
        raise ConfigError(
            f"cannot reach a Ray cluster at {address} ({reason}); start one there with "
            f"`ray start --head --port={port}` or fix --address"
        ) from None


def local_num_cpus(num_workers: int) -> int:
    """CPUs a Ray started inside the run declares: the machine's, and at least one per worker."""
    return max(os.cpu_count() or 1, num_workers)


@contextmanager
def ray_session(address: str | None = None, num_cpus: int | None = None) -> Iterator[Any]:
    """Join the cluster at ``address`` (or start Ray here); always ``ray.shutdown()`` on the way out.

    A Ray already initialized in this process (a test fixture, a notebook) is used as it is and
    left running: whoever started it stops it.
    """
    ray = import_ray()
    if ray.is_initialized():
        yield ray
        return
    if address is not None:
        probe_address(address)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    kwargs: dict[str, Any] = {"logging_level": logging.ERROR, "log_to_driver": False}
    if address is None:
        kwargs.update(num_cpus=num_cpus, include_dashboard=False)
    # Something that accepts TCP but is no Ray head would keep ray.init retrying for ~20 s (one try a
    # second); JOIN_TIMEOUT_S tries are enough for a live head, and the user's own setting wins.
    wait_was = os.environ.get(GCS_WAIT_VARIABLE)
    if address is not None and wait_was is None:
        os.environ[GCS_WAIT_VARIABLE] = str(JOIN_TIMEOUT_S)
    if address is not None:
        _use_local_token()
    try:
        ray.init(address=address, **kwargs)
    except (ConnectionError, RuntimeError, ValueError, TimeoutError) as exc:
        ray.shutdown()
        where = f"the Ray cluster at {address}" if address else "a local Ray instance"
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise ConfigError(f"could not connect to {where} ({first}); check that `ray status` works there") from None
    finally:
        if address is not None and wait_was is None:
            os.environ.pop(GCS_WAIT_VARIABLE, None)
    try:
        yield ray
    finally:
        ray.shutdown()


def _use_local_token() -> None:
    """Send this machine's Ray token (RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token), if any.

    Ray does this itself for a cluster it finds on this machine, never for an explicit address;
    but `ray start --head` turns token authentication on whenever a token file exists, and a
    cluster without authentication ignores the token.  RAY_AUTH_MODE, when set, is left to decide.
    """
    if os.environ.get("RAY_AUTH_MODE") is not None:
        return
    try:
        from ray._private.authentication import authentication_token_setup as setup
    except ImportError:  # a Ray without token authentication
        return
    quiet = logging.getLogger(setup.__name__)
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        setup.maybe_enable_token_auth_if_token_available(warn_if_disabled=False)
    except Exception:  # noqa: BLE001 - Ray's private helper changed: connect as Ray would by default
        pass
    finally:
        quiet.setLevel(level)


def check_cluster_cpus(ray, num_workers: int) -> None:
    """Each worker asks Ray for one CPU; a cluster with fewer would leave them pending forever."""
    cpus = int(ray.cluster_resources().get("CPU", 0))
    if cpus < num_workers:
        raise ConfigError(
            f"the Ray cluster has {cpus} CPUs but --num-workers {num_workers} needs one each; "
            "add nodes (ray start --address=HEAD) or lower --num-workers"
        )
