from pgrl.policies.actor_critic import ActorCriticPolicy
from pgrl.policies.distributions import Categorical, DiagGaussian

__all__ = ["ActorCriticPolicy", "Categorical", "DiagGaussian"]
