from pgrl.policies.actor_critic import ActorCriticPolicy
from pgrl.policies.distributions import Bernoulli, Categorical, DiagGaussian, MultiCategorical
from pgrl.policies.features import BaseFeaturesExtractor, CombinedExtractor, FlattenExtractor, NatureCNN
from pgrl.policies.recurrent import RecurrentActorCriticPolicy, Sequences


def make_policy(config, observation_space, action_space) -> ActorCriticPolicy:
    """The policy an algorithm config names (``config.policy``, ``config.policy_kwargs``): an
    ActorCriticPolicy, or a RecurrentActorCriticPolicy for the Lstm names.  Every place that builds
    a model's policy (the algorithms, Ray's workers) builds it here."""
    from pgrl.config import LSTM_KWARGS, is_recurrent

    kwargs = config.policy_kwargs.model_dump()
    if is_recurrent(config.policy):
        return RecurrentActorCriticPolicy(observation_space, action_space, **kwargs)
    return ActorCriticPolicy(observation_space, action_space,
                             **{k: v for k, v in kwargs.items() if k not in LSTM_KWARGS})


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
    "RecurrentActorCriticPolicy",
    "Sequences",
    "make_policy",
]
