"""The JAX side of `make bench-jax`: rejax's PPO (PureJaxRL's design: the whole training loop
compiled into one XLA program) on gymnax's CartPole-v1, run by benchmarks.jax_compare in its own
virtual environment (.venv-jax: jax, rejax, gymnax; no torch, no pgrl).

    .venv-jax/bin/python benchmarks/jax_worker.py --config default --seed 0

Prints one JSON line: compile and training seconds, env steps, and the greedy mean return of
rejax's own evaluation (128 episodes) after training.  The training seconds exclude compiling
and include that single evaluation at the end (rejax runs it inside the compiled program).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

# PureJaxRL's CartPole-v1 PPO config (purejaxrl/ppo.py); "wide" is the same with 1024 envs.
CONFIGS = {
    "default": {"num_envs": 4, "total_timesteps": 500_000},
    "wide": {"num_envs": 1024, "total_timesteps": 1024 * 128 * 10},
}
COMMON = {"num_steps": 128, "num_epochs": 4, "num_minibatches": 4, "lr": 2.5e-4, "gamma": 0.99,
          "gae_lambda": 0.95, "clip_eps": 0.2, "ent_coef": 0.01, "vf_coef": 0.5, "max_grad_norm": 0.5}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", choices=sorted(CONFIGS), default="default")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--compile-cache", default=None, metavar="DIR",
                        help="JAX's persistent compilation cache (a second run with it is warm)")
    args = parser.parse_args(argv)

    import jax

    if args.compile_cache:
        jax.config.update("jax_compilation_cache_dir", args.compile_cache)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    import jax.numpy as jnp
    import optax
    from rejax import PPO

    hp = {**COMMON, **CONFIGS[args.config]}
    iterations = hp["total_timesteps"] // (hp["num_envs"] * hp["num_steps"])
    updates = iterations * hp["num_epochs"] * hp["num_minibatches"]
    algo = PPO.create(
        env="CartPole-v1",
        agent_kwargs={"activation": "tanh", "hidden_layer_sizes": (64, 64)},
        num_envs=hp["num_envs"], num_steps=hp["num_steps"], num_epochs=hp["num_epochs"],
        num_minibatches=hp["num_minibatches"],
        # rejax has no anneal of its own: PureJaxRL's linear decay to 0 over all updates, as a schedule
        learning_rate=optax.linear_schedule(hp["lr"], 0.0, updates),
        max_grad_norm=hp["max_grad_norm"], total_timesteps=hp["total_timesteps"],
        eval_freq=hp["total_timesteps"], skip_initial_evaluation=True,  # one evaluation, at the end
        gamma=hp["gamma"], gae_lambda=hp["gae_lambda"], clip_eps=hp["clip_eps"], ent_coef=hp["ent_coef"],
        vf_coef=hp["vf_coef"],
    )
    key = jax.random.PRNGKey(args.seed)
    start = time.perf_counter()
    compiled = jax.jit(algo.train).lower(key).compile()
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    _, evaluation = compiled(key)
    jax.block_until_ready(evaluation)
    train_s = time.perf_counter() - start
    lengths, returns = evaluation
    print(json.dumps({
        "system": "rejax", "config": args.config, "seed": args.seed, "compile_s": compile_s,
        "train_s": train_s, "steps": int(iterations * hp["num_envs"] * hp["num_steps"]),
        "return": float(jnp.mean(returns[-1])), "jax": jax.__version__,
    }))


if __name__ == "__main__":
    sys.exit(main())
