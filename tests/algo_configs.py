"""Hyperparameters small enough for every algorithm to train a few rollouts in a test (shared by
the space and mask tests; ``pythonpath = ["tests"]`` in pyproject.toml makes this importable)."""

import pgrl

ALGOS = sorted(pgrl.ALGORITHMS)
SMALL = {
    "reinforce": {}, "vpg": {}, "actor_critic": {}, "a2c": {"n_steps": 8}, "a3c": {"n_steps": 8, "n_workers": 2},
    "ppo": {"n_steps": 32, "batch_size": 32, "n_epochs": 2}, "trpo": {"n_steps": 32, "batch_size": 32},
}
