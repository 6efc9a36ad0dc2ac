from pgrl.policies.actor_critic import ActorCriticPolicy
from pgrl.policies.distributions import Bernoulli, Categorical, DiagGaussian, MultiCategorical
from pgrl.policies.features import BaseFeaturesExtractor, CombinedExtractor, FlattenExtractor, NatureCNN

__all__ = [
    "ActorCriticPolicy",
    "BaseFeaturesExtractor",
    "Bernoulli",
    "Categorical",
    "CombinedExtractor",
    "DiagGaussian",
    "FlattenExtractor",
    "MultiCategorical",
    "NatureCNN",
]
