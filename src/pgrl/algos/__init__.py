from pgrl.algos.a2c import A2C
from pgrl.algos.a3c import A3C
from pgrl.algos.actor_critic import ActorCritic
from pgrl.algos.base import Algorithm
from pgrl.algos.ppo import PPO
from pgrl.algos.reinforce import REINFORCE
from pgrl.algos.trpo import TRPO
from pgrl.algos.vpg import VPG

ALGORITHMS: dict[str, type[Algorithm]] = {cls.name: cls for cls in (REINFORCE, VPG, ActorCritic, A2C, A3C, PPO, TRPO)}
"""Every algorithm class by its command-line name: "reinforce", "vpg", "actor_critic", "a2c", "a3c", "ppo", "trpo"."""

__all__ = ["A2C", "A3C", "ALGORITHMS", "PPO", "REINFORCE", "TRPO", "VPG", "ActorCritic", "Algorithm"]
