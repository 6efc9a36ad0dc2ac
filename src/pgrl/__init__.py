"""pgrl: fast on-policy policy-gradient and actor-critic reinforcement learning in PyTorch."""

from pgrl import callbacks
from pgrl.algos import A2C, A3C, ALGORITHMS, PPO, REINFORCE, TRPO, VPG, ActorCritic, Algorithm
from pgrl.envs.make import make_env, make_vec_env
from pgrl.errors import PGRLError
from pgrl.evaluation import evaluate_policy

__version__ = "0.1.0"

__all__ = [
    "A2C",
    "A3C",
    "ALGORITHMS",
    "PPO",
    "REINFORCE",
    "TRPO",
    "VPG",
    "ActorCritic",
    "callbacks",
    "Algorithm",
    "PGRLError",
    "evaluate_policy",
    "make_env",
    "make_vec_env",
]
