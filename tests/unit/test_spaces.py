"""Every action and observation space the policy takes: distributions, shapes, preprocessing, storage."""

import gymnasium as gym
import numpy as np
import pytest
import torch

from pgrl.errors import ConfigError, EnvError
from pgrl.obs import TensorDict, allocate, batch_from_user, is_image_space, to_tensor
from pgrl.policies import ActorCriticPolicy, Bernoulli, MultiCategorical
from pgrl.policies.features import CombinedExtractor, NatureCNN, preprocess

BOX = gym.spaces.Box(-1.0, 1.0, (3,), np.float32)
B = 6


def sample_obs(space: gym.Space, n: int = B):
    return to_tensor(np.stack([space.sample() for _ in range(n)]) if not isinstance(space, gym.spaces.Dict)
                     else {k: np.stack([space.sample()[k] for _ in range(n)]) for k in space.spaces},
                     space, torch.device("cpu"))


# -- distributions ------------------------------------------------------------------------------

@pytest.mark.parametrize("nvec", [(3, 3, 3), (2, 5, 3)], ids=["equal", "unequal"])
def test_multicategorical_sums_independent_categoricals(nvec):
    torch.manual_seed(0)
    logits = torch.randn(B, sum(nvec))
    dist = MultiCategorical(logits, nvec)
    actions = dist.sample()
    assert actions.shape == (B, len(nvec)) and actions.dtype == torch.int64
    assert all(bool((actions[:, i] < n).all()) for i, n in enumerate(nvec))  # padding is never drawn
    parts = [torch.distributions.Categorical(logits=chunk) for chunk in logits.split(nvec, dim=-1)]
    expected_lp = sum(p.log_prob(actions[:, i]) for i, p in enumerate(parts))
    torch.testing.assert_close(dist.log_prob(actions), expected_lp)
    torch.testing.assert_close(dist.entropy(), sum(p.entropy() for p in parts))
    other_logits = torch.randn(B, sum(nvec))
    other = MultiCategorical(other_logits, nvec)
    other_parts = [torch.distributions.Categorical(logits=chunk) for chunk in other_logits.split(nvec, dim=-1)]
    expected_kl = sum(torch.distributions.kl_divergence(p, q) for p, q in zip(parts, other_parts, strict=True))
    torch.testing.assert_close(dist.kl(other), expected_kl)
    torch.testing.assert_close(dist.mode(), torch.stack([chunk.argmax(-1) for chunk in logits.split(nvec, -1)], -1))


def test_multicategorical_gradients_reach_every_head():
    logits = torch.randn(B, 7, requires_grad=True)
    dist = MultiCategorical(logits, (2, 5))
    (dist.log_prob(dist.sample()).sum() + dist.entropy().sum()).backward()
    assert torch.isfinite(logits.grad).all() and bool((logits.grad != 0).any(dim=0).all())


def test_bernoulli_matches_torch():
    torch.manual_seed(0)
    logits = torch.randn(B, 4) * 3
    dist, ref = Bernoulli(logits), torch.distributions.Bernoulli(logits=logits)
    actions = dist.sample()
    assert set(actions.unique().tolist()) <= {0.0, 1.0}
    torch.testing.assert_close(dist.log_prob(actions), ref.log_prob(actions).sum(-1))
    torch.testing.assert_close(dist.entropy(), ref.entropy().sum(-1))
    other = torch.randn(B, 4)
    torch.testing.assert_close(
        dist.kl(Bernoulli(other)),
        torch.distributions.kl_divergence(ref, torch.distributions.Bernoulli(logits=other)).sum(-1))
    assert torch.equal(dist.mode(), (logits > 0).float())


def test_bernoulli_samples_follow_the_probabilities():
    torch.manual_seed(1)
    logits = torch.tensor([[-2.0, 0.0, 2.0]]).expand(20000, 3)
    freq = Bernoulli(logits).sample().mean(0)
    torch.testing.assert_close(freq, torch.sigmoid(logits[0]), atol=0.02, rtol=0)


# -- action spaces through the policy ---------------------------------------------------------

ACTION_CASES = {
    "discrete": (gym.spaces.Discrete(4), (), torch.int64),
    "box-2d": (gym.spaces.Box(-2.0, 2.0, (2, 3), np.float32), (6,), torch.float32),
    "multidiscrete": (gym.spaces.MultiDiscrete([2, 3, 4]), (3,), torch.int64),
    "multidiscrete-2d": (gym.spaces.MultiDiscrete([[2, 3], [4, 2]]), (4,), torch.int64),
    "multibinary": (gym.spaces.MultiBinary(5), (5,), torch.float32),
    "multibinary-2d": (gym.spaces.MultiBinary([2, 2]), (4,), torch.float32),
}


@pytest.mark.parametrize("case", list(ACTION_CASES))
def test_every_action_space_acts_evaluates_and_reaches_the_env_in_its_shape(case):
    space, stored, dtype = ACTION_CASES[case]
    policy = ActorCriticPolicy(BOX, space)
    obs = sample_obs(BOX)
    actions, log_probs = policy.act(obs)
    assert actions.shape == (B, *stored) and actions.dtype == dtype
    assert policy.action_shape == stored and policy.action_dtype == dtype
    lp, entropy, values = policy.evaluate(obs, actions)
    torch.testing.assert_close(lp, log_probs)
    assert entropy.shape == values.shape == (B,)
    to_env = policy.to_env(actions).detach().numpy().astype(space.dtype)
    assert to_env.shape == (B, *space.shape)
    assert all(space.contains(a) for a in to_env)
    greedy, _ = policy.act(obs, deterministic=True)
    assert torch.equal(greedy, policy.act(obs, deterministic=True)[0])


# -- observation spaces ----------------------------------------------------------------------

def test_discrete_and_multidiscrete_observations_are_one_hot():
    md = gym.spaces.MultiDiscrete([3, 2])
    x = preprocess(torch.tensor([[2.0, 0.0], [0.0, 1.0]]), md)
    assert torch.equal(x, torch.tensor([[0, 0, 1, 1, 0], [1, 0, 0, 0, 1]], dtype=torch.float32))
    d = gym.spaces.Discrete(3)
    assert torch.equal(preprocess(torch.tensor([1.0, 2.0]), d), torch.tensor([[0, 1, 0], [0, 0, 1]]).float())


OBS_CASES = {
    "box-2d": gym.spaces.Box(-1, 1, (2, 3), np.float32),
    "discrete": gym.spaces.Discrete(5),
    "multidiscrete": gym.spaces.MultiDiscrete([3, 4]),
    "multibinary": gym.spaces.MultiBinary(6),
    "image-first": gym.spaces.Box(0, 255, (3, 40, 40), np.uint8),
    "image-last": gym.spaces.Box(0, 255, (40, 40, 1), np.uint8),
    "dict": gym.spaces.Dict({"img": gym.spaces.Box(0, 255, (36, 36, 3), np.uint8),
                             "vec": gym.spaces.Box(-1, 1, (4,), np.float32),
                             "id": gym.spaces.Discrete(3), "bits": gym.spaces.MultiBinary(2)}),
}
POLICY_FOR = {"dict": "CombinedExtractor", "image-first": "NatureCNN", "image-last": "NatureCNN"}


@pytest.mark.parametrize("case", list(OBS_CASES))
def test_every_observation_space_runs_through_the_policy(case):
    space = OBS_CASES[case]
    policy = ActorCriticPolicy(space, gym.spaces.Discrete(3), features_extractor_class=POLICY_FOR.get(case))
    obs = sample_obs(space)
    if case.startswith("image"):
        assert obs.dtype == torch.uint8 and is_image_space(space)
        assert any(isinstance(m, torch.nn.Conv2d) for m in policy.modules())
    actions, log_probs = policy.act(obs)
    assert actions.shape == log_probs.shape == policy.value(obs).shape == (B,)
    storage = allocate(space, (4, B), torch.device("cpu"))
    storage[1] = obs
    flat = storage.reshape(4 * B) if isinstance(storage, TensorDict) else storage.reshape(4 * B, *storage.shape[2:])
    torch.testing.assert_close(policy.value(flat[B:2 * B]), policy.value(obs))


def test_channel_last_images_give_the_channel_first_networks_result():
    last = gym.spaces.Box(0, 255, (40, 44, 3), np.uint8)
    first = gym.spaces.Box(0, 255, (3, 40, 44), np.uint8)
    torch.manual_seed(0)
    a = ActorCriticPolicy(last, gym.spaces.Discrete(2), features_extractor_class="NatureCNN")
    torch.manual_seed(0)
    b = ActorCriticPolicy(first, gym.spaces.Discrete(2), features_extractor_class="NatureCNN")
    images = torch.randint(0, 256, (B, 40, 44, 3), dtype=torch.uint8)
    torch.testing.assert_close(a.value(images), b.value(images.permute(0, 3, 1, 2)))


def test_images_are_scaled_unless_normalize_images_is_off():
    space = gym.spaces.Box(0, 255, (1, 36, 36), np.uint8)
    image = torch.full((1, 1, 36, 36), 255, dtype=torch.uint8)
    assert float(preprocess(image, space).max()) == 1.0
    assert float(preprocess(image, space, normalize_images=False).max()) == 255.0


def test_separate_extractors_for_actor_and_critic():
    space = gym.spaces.Box(0, 255, (1, 36, 36), np.uint8)
    shared = ActorCriticPolicy(space, gym.spaces.Discrete(2), features_extractor_class="NatureCNN")
    apart = ActorCriticPolicy(space, gym.spaces.Discrete(2), features_extractor_class="NatureCNN",
                              share_features_extractor=False)
    count = lambda p: sum(isinstance(m, NatureCNN) for m in p.modules())  # noqa: E731
    assert (count(shared), count(apart)) == (1, 2)
    apart.value(sample_obs(space)).sum().backward()
    assert all(p.grad is None for p in apart.features_extractor.parameters())
    assert all(p.grad is not None for p in apart.vf_features_extractor.parameters())


def test_combined_extractor_uses_a_cnn_per_image_key():
    space = OBS_CASES["dict"]
    extractor = CombinedExtractor(space)
    assert isinstance(extractor.extractors["img"], NatureCNN)
    assert extractor.features_dim == 256 + 4 + 3 + 2


def test_a_custom_extractor_class_is_built_and_used():
    from pgrl.policies import BaseFeaturesExtractor

    class Tiny(BaseFeaturesExtractor):
        def __init__(self, observation_space, features_dim=5):
            super().__init__(observation_space, features_dim)
            self.linear = torch.nn.Linear(int(np.prod(observation_space.shape)), features_dim)

        def forward(self, x):
            return self.linear(x.flatten(1))

    policy = ActorCriticPolicy(BOX, gym.spaces.Discrete(2), features_extractor_class=Tiny,
                               features_extractor_kwargs={"features_dim": 7}, net_arch=[])
    assert policy.features_extractor.features_dim == 7 and policy.pi_head[0].in_features == 7
    with pytest.raises(ConfigError, match="features_extractor_kwargs"):
        ActorCriticPolicy(BOX, gym.spaces.Discrete(2), features_extractor_class=Tiny,
                          features_extractor_kwargs={"width": 3})


def test_nature_cnn_refuses_small_or_non_image_inputs():
    with pytest.raises(ConfigError, match="36x36"):
        ActorCriticPolicy(gym.spaces.Box(0, 255, (1, 16, 16), np.uint8), gym.spaces.Discrete(2),
                          features_extractor_class="NatureCNN")
    with pytest.raises(ConfigError, match="MlpPolicy"):
        ActorCriticPolicy(BOX, gym.spaces.Discrete(2), features_extractor_class="NatureCNN")


def test_dict_observations_need_the_combined_extractor():
    with pytest.raises(ConfigError, match="MultiInputPolicy"):
        ActorCriticPolicy(OBS_CASES["dict"], gym.spaces.Discrete(2))


def test_stacking_refuses_policies_with_an_extractor():
    space = gym.spaces.Box(0, 255, (1, 36, 36), np.uint8)
    policies = [ActorCriticPolicy(space, gym.spaces.Discrete(2), features_extractor_class="NatureCNN")] * 2
    with pytest.raises(ConfigError, match="one by one"):
        ActorCriticPolicy.stack(policies)


# -- TensorDict and user input ------------------------------------------------------------------

def test_tensordict_indexes_reshapes_and_concatenates_like_a_tensor():
    space = gym.spaces.Dict({"a": gym.spaces.Box(-1, 1, (2, 3)), "b": gym.spaces.Discrete(4)})
    td = allocate(space, (5, 2), torch.device("cpu"))
    assert td.shape == (5, 2) and td["a"].shape == (5, 2, 2, 3)
    td[0] = sample_obs(space, 2)
    flat = td.reshape(10)
    assert flat.shape == (10,) and flat["a"].shape == (10, 2, 3)
    both = torch.cat([flat, flat])
    assert both.shape == (20,) and both["b"].shape == (20,)
    picked = flat[torch.tensor([0, 1])]
    assert torch.equal(picked["a"], td["a"][0])
    with pytest.raises(TypeError, match="TensorDict"):
        torch.exp(td)


def test_batch_from_user_takes_single_and_batched_dict_observations():
    space = OBS_CASES["dict"]
    one = space.sample()
    obs, single = batch_from_user(one, space, torch.device("cpu"))
    assert single and obs.shape == (1,) and obs["img"].dtype == torch.uint8
    batch = {k: np.stack([v, v]) for k, v in one.items()}
    obs, single = batch_from_user(batch, space, torch.device("cpu"))
    assert not single and obs.shape == (2,)
    with pytest.raises(EnvError, match="keys"):
        batch_from_user({"img": one["img"]}, space, torch.device("cpu"))
    with pytest.raises(EnvError, match="dict"):
        batch_from_user(one["vec"], space, torch.device("cpu"))


# -- action masks --------------------------------------------------------------------------------

def test_masked_categorical_never_picks_an_invalid_action_and_keeps_gradients_finite():
    from pgrl.policies.distributions import Categorical

    torch.manual_seed(0)
    logits = torch.randn(256, 6, requires_grad=True)
    mask = torch.rand(256, 6) < 0.5
    mask[torch.arange(256), torch.randint(0, 6, (256,))] = True  # at least one valid action per row
    dist = Categorical(logits, mask)
    assert bool(mask.gather(1, dist.sample().unsqueeze(1)).all()) and bool(mask.gather(1, dist.mode()[:, None]).all())
    # the entropy over the valid actions only: that of the renormalized valid logits
    valid_only = torch.distributions.Categorical(logits=logits.detach().masked_fill(~mask, -torch.inf))
    torch.testing.assert_close(dist.entropy().detach(), valid_only.entropy())
    (dist.entropy().sum() + dist.log_prob(dist.sample()).sum()).backward()
    assert torch.isfinite(logits.grad).all()
    assert bool((logits.grad[~mask] == 0).all())  # invalid actions get no gradient


def test_masked_multicategorical_masks_each_entry():
    torch.manual_seed(1)
    nvec = (3, 4)
    mask = torch.tensor([[True, False, False, False, True, False, True]] * 100)
    dist = MultiCategorical(torch.randn(100, 7), nvec, mask)
    actions = dist.sample()
    assert bool((actions[:, 0] == 0).all()) and set(actions[:, 1].tolist()) <= {1, 3}
    assert torch.isfinite(dist.entropy()).all()


def test_policy_refuses_masks_for_continuous_actions():
    policy = ActorCriticPolicy(BOX, gym.spaces.Box(-1, 1, (2,)))
    with pytest.raises(EnvError, match="Discrete and MultiDiscrete"):
        policy.act(sample_obs(BOX), action_masks=torch.ones(B, 2, dtype=torch.bool))
