"""Ray backend: rollout actors for the synchronous algorithms, gradient actors for A3C.

``pgrl train ALGO ENV --backend ray --num-workers K [--envs-per-worker M] [--address HOST:PORT]``
builds the model here (``build_model``) and trains it with ``learn_on_ray``; see
docs/distributed.md.  From Python::

    from pgrl.distributed import RayOptions, build_model, learn_on_ray
    options = RayOptions(num_workers=2)
    model = build_model("ppo", "CartPole-v1", options, seed=0)
    learn_on_ray(model, options)

The learner (optimizer, update, logging, checkpoints) stays in this process; only collection
(and for A3C the gradient computation) goes to the actors.  Ray is imported only when a run
starts, so pgrl works without the ``pgrl[ray]`` extra.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import gymnasium as gym

from pgrl.distributed.collector import (
    PendingCollector,
    RayCollector,
    concat_rollouts,
    envs_per_worker,
)
from pgrl.distributed.pool import MAX_RESTARTS, WorkerRestartWarning
from pgrl.distributed.session import (
    RayOptions,
    check_algorithm,
    check_cluster_cpus,
    import_ray,
    local_num_cpus,
    options_from_flags,
    ray_algorithms,
    ray_session,
)
from pgrl.loops.collection import use_collector


def configure(algo_name: str, env_id: str, options: RayOptions, preset: str, hparams: dict[str, Any],
              config_class) -> dict[str, Any]:
    """The hyperparameters with the Ray layout folded in.

    Synchronous algorithms: n_envs becomes K*M, the width of the concatenated rollout, so batch
    sizes and schedules see the real batch (M defaults to the config's n_envs / K, rounded up).
    a3c: n_workers becomes K and, with --envs-per-worker, n_envs (already per worker) becomes M.
    """
    from pgrl.algos import ALGORITHMS
    from pgrl.config import load_preset, merge

    check_algorithm(algo_name, options)
    values = merge(load_preset(algo_name, env_id, preset), hparams)
    if ALGORITHMS[algo_name].capabilities.ray == "gradients":  # gradient actors: one per worker
        layout = {"n_workers": options.num_workers}
        if options.envs_per_worker is not None:
            layout["n_envs"] = options.envs_per_worker
        return merge(hparams, layout)
    n_envs = values.get("n_envs", config_class.model_fields["n_envs"].default)
    per_worker = envs_per_worker(int(n_envs), options.num_workers, options.envs_per_worker)
    return merge(hparams, {"n_envs": options.num_workers * per_worker})


def build_model(algo_name: str, env_id: str, options: RayOptions, *, seed: int = 0, device: str = "auto",
                preset: str = "default", env_backend: str = "auto", vectorization: str = "sync",
                env_kwargs: dict | None = None, **hparams: Any):
    """The learner's model for a Ray run: built from one probe env, so the driver steps no envs itself."""
    from pgrl.algos import ALGORITHMS
    from pgrl.algos.common import resolve_device
    from pgrl.envs.make import check_env_id, make_env
    from pgrl.errors import ConfigError
    from pgrl.obs import has_image

    cls = ALGORITHMS.get(algo_name)
    if cls is None:
        raise ConfigError(f"unknown algorithm '{algo_name}'; choose one of: {', '.join(sorted(ALGORITHMS))}")
    check_env_id(env_id)
    values = configure(cls.name, env_id, options, preset, hparams, cls.config_class)
    probe = make_env(env_id, 1, backend=env_backend, device=resolve_device(device), env_kwargs=env_kwargs)
    space = probe.single_observation_space
    if isinstance(space, gym.spaces.Dict) or has_image(space):
        probe.close()
        raise ConfigError(f"Ray runs carry Box and Discrete observations; {env_id}'s {type(space).__name__} "
                          f"observations {space} train in one process: drop --ray")
    model = cls.from_spaces(probe.single_observation_space, probe.single_action_space, env_id=env_id, seed=seed,
                            device=device, preset=preset, env_backend=env_backend, vectorization=vectorization,
                            env_kwargs=env_kwargs, **values)
    if model.policy.recurrent:
        probe.close()
        raise ConfigError(f"Ray runs carry feed-forward policies; {model.config.policy} (an LSTM policy) trains in "
                          "one process: drop --ray")
    model.env = probe  # spaces and max_episode_steps for the learner; the actors own the envs that run
    use_collector(model, PendingCollector())
    return model


@contextmanager
def session_for(options: RayOptions) -> Iterator[Any]:
    """The Ray session a run with ``options`` uses: join ``options.address`` or start Ray here.

    Checks that the cluster has a CPU for every worker (the actors would wait forever otherwise).
    """
    with ray_session(options.address, local_num_cpus(options.num_workers)) as ray:
        check_cluster_cpus(ray, options.num_workers)
        yield ray


def learn_on_ray(model, options: RayOptions, total_timesteps: int | None = None, *, progress_bar: bool = False,
                 log_dir: str | Path | None = None, callback=None, checkpointer=None,
                 resume_state: dict[str, Any] | None = None):
    """Train ``model`` on Ray (joining ``options.address`` or starting Ray here); Ray is shut down on return.

    A Ray this process had already initialized is used and left running.
    """
    check_algorithm(model.name, options)
    with session_for(options) as ray:
        if model.capabilities.ray == "gradients":
            from pgrl.distributed.a3c import learn_a3c

            return learn_a3c(model, ray, options.staleness_bound, total_timesteps, progress_bar=progress_bar,
                             log_dir=log_dir, callback=callback, checkpointer=checkpointer,
                             resume_state=resume_state)
        per_worker = model.config.n_envs // options.num_workers
        if per_worker * options.num_workers != model.config.n_envs:
            from pgrl.errors import ConfigError

            raise ConfigError(
                f"n_envs={model.config.n_envs} does not split over {options.num_workers} workers; "
                "set n_envs to a multiple of --num-workers or pass --envs-per-worker"
            )
        pending = model._collector
        collector = RayCollector(model, ray, options.num_workers, per_worker)
        try:
            if isinstance(pending, PendingCollector) and pending.seed is not None:
                collector.reset(seed=pending.seed)  # a resumed run: episodes that differ from the first ones
            use_collector(model, collector)
            kwargs: dict[str, Any] = {"log_dir": log_dir, "callback": callback}
            if checkpointer is not None or resume_state is not None:
                kwargs.update(checkpointer=checkpointer, resume_state=resume_state)
            return model.learn(total_timesteps, progress_bar=progress_bar, **kwargs)
        finally:
            use_collector(model, PendingCollector())
            collector.close()


__all__ = [
    "MAX_RESTARTS",
    "PendingCollector",
    "RayCollector",
    "RayOptions",
    "WorkerRestartWarning",
    "build_model",
    "concat_rollouts",
    "configure",
    "import_ray",
    "learn_on_ray",
    "options_from_flags",
    "ray_algorithms",
    "ray_session",
    "session_for",
]
