"""LSTM policies: sequences, states, bootstrap values, predict's contract, configs and refusals."""

from __future__ import annotations

from functools import partial

import gymnasium as gym
import numpy as np
import pytest
import torch

import pgrl
from pgrl import A2C, PPO, REINFORCE, TRPO
from pgrl.algos.common import batches, env_major, flatten, sequences
from pgrl.envs.identity import DictObsEnv, InvalidActionEnv, MemoryEnv, QuadrantImageEnv
from pgrl.envs.native import make_native
from pgrl.errors import ConfigError, EnvError
from pgrl.policies.recurrent import RecurrentActorCriticPolicy, Sequences

SMALL = {"n_envs": 4, "n_steps": 64, "batch_size": 32, "n_epochs": 1}
CRITICS = {
    "own critic LSTM": {},
    "shared LSTM": {"shared_lstm": True, "enable_critic_lstm": False},
    "no critic LSTM": {"enable_critic_lstm": False},
    "two layers": {"n_lstm_layers": 2},
}


def _ppo(env="CartPoleNoVel-v1", policy="MlpLstmPolicy", hidden=16, seed=0, **extra):
    kwargs = {"lstm_hidden_size": hidden, **extra.pop("policy_kwargs", {})}
    return PPO(policy, env, seed=seed, device="cpu", **{**SMALL, **extra}, policy_kwargs=kwargs)


def _short_episodes(num_envs=4):
    """Native CartPoleNoVel cut at 12 steps: episode ends (and time-limit cuts) inside every rollout."""
    return make_native("CartPoleNoVel-v1", num_envs, seed=0, max_episode_steps=12)


# -- sequences ----------------------------------------------------------------------------------
def test_sequences_cut_at_env_changes_gaps_and_episode_starts():
    N = 2  # time-major flat index t * 2 + env
    starts = torch.zeros(8, dtype=torch.bool)
    starts[2 * 2 + 0] = True  # env 0 starts an episode at t = 2
    states = torch.arange(8, dtype=torch.float32)[:, None]
    idx = torch.tensor([0, 2, 4, 6, 1, 3, 7])  # env 0 t=0..3, then env 1 t=0, 1, 3 (t=2 missing)
    seq = Sequences.of(idx, N, starts, states)
    assert seq.seq_id.tolist() == [0, 0, 1, 1, 2, 2, 3]
    assert seq.pos.tolist() == [0, 1, 0, 1, 0, 1, 0]
    assert seq.length == 2
    assert seq.initial_state[:, 0].tolist() == [0.0, 4.0, 1.0, 7.0]  # the state stored at each first row


@pytest.mark.parametrize("critic", sorted(CRITICS))
def test_update_log_probs_and_values_equal_those_computed_while_acting(critic):
    model = _ppo(_short_episodes(), policy_kwargs=CRITICS[critic])
    rollout = model.collect()
    starts = rollout.episode_starts
    assert bool(starts[1:].any()), "episodes must start inside the rollout"
    obs, actions = flatten(rollout.obs), flatten(rollout.actions)
    crossings = 0
    for idx, seqs in batches(model.policy, rollout, 32):
        crossings += int((flatten(starts)[idx] & (seqs.pos > 0)).sum())  # never: a start begins a sequence
        log_probs, _, values = model.policy.evaluate(obs[idx], actions[idx], None, seqs)
        torch.testing.assert_close(log_probs, flatten(rollout.log_probs)[idx], atol=1e-5, rtol=0)
        torch.testing.assert_close(values, flatten(rollout.values)[idx], atol=1e-5, rtol=0)
    assert crossings == 0
    # A2C's layout: every env's whole rollout as sequences, episode boundaries inside them
    idx = env_major(rollout.n_steps, rollout.num_envs, obs.device)
    seqs = sequences(rollout, idx)
    assert seqs.initial_state.shape[0] > rollout.num_envs  # cut at the episode starts
    log_probs, _, _ = model.policy.evaluate(obs[idx], actions[idx], None, seqs)
    torch.testing.assert_close(log_probs, flatten(rollout.log_probs)[idx], atol=1e-5, rtol=0)


def test_gradients_flow_through_time_within_a_sequence():
    model = _ppo(MemoryEnv(delay=4), n_envs=1)
    rollout = model.collect()
    obs = flatten(rollout.obs).clone().requires_grad_(True)
    idx = env_major(rollout.n_steps, 1, obs.device)
    seqs = sequences(rollout, idx)
    log_probs, _, _ = model.policy.evaluate(obs[idx], flatten(rollout.actions)[idx], None, seqs)
    # the log-prob at the query step (step 4 of the first episode) depends on the cue seen at step 0
    log_probs[4].backward()
    assert obs.grad[0].abs().sum() > 0
    assert obs.grad[5:].abs().sum() == 0  # and on nothing after it


def test_states_restart_at_episode_starts_and_carry_across_rollouts():
    model = _ppo(_short_episodes())
    first = model.collect()
    stored = first.states.clone()
    assert torch.all(stored[first.episode_starts] == 0)
    assert torch.any(stored[~first.episode_starts] != 0)
    assert bool(first.episode_starts[0].all())  # the first rollout starts every episode
    carried = model.collector().state.clone()
    second = model.collect()
    # the second rollout starts from the state the first ended in (zeroed where an episode starts)
    expected = carried.masked_fill(second.episode_starts[0].unsqueeze(1), 0.0)
    torch.testing.assert_close(second.states[0], expected)


def test_a_time_limit_cut_is_bootstrapped_from_that_steps_state():
    model = _ppo(_short_episodes())
    rollout = model.collect()
    assert rollout.bootstrap, "the 12-step limit cuts episodes inside a 64-step rollout"
    policy = model.policy
    for t, envs, values in rollout.bootstrap:
        assert bool(rollout.truncated[t, envs].all())
        _, after = policy._one_step(rollout.obs[t, envs], rollout.states[t, envs])
        torch.testing.assert_close(values, policy.state_value(rollout.next_obs[t, envs], after))
        from_zero = policy.state_value(rollout.next_obs[t, envs], policy.initial_state(len(envs)))
        assert not torch.allclose(values, from_zero)  # the state matters
    next_values = rollout.next_values()
    t, envs, values = rollout.bootstrap[0]
    torch.testing.assert_close(next_values[t, envs], values)


# -- predict, evaluate, save/load ------------------------------------------------------------------
def test_predict_without_state_works_and_returns_sb3_contribs_state():
    model = _ppo(policy_kwargs={"n_lstm_layers": 2})
    env = gym.make("CartPoleNoVel-v1")
    obs, _ = env.reset(seed=0)
    action, state = model.predict(obs)  # no state, no episode_start (as SB3's)
    assert env.action_space.contains(action)
    h, c = state
    assert h.shape == c.shape == (2, 1, 16) and isinstance(h, np.ndarray)
    batch = np.stack([obs, obs, obs])
    actions, (h3, _) = model.predict(batch, state=None, episode_start=np.ones(3, dtype=bool))
    assert actions.shape == (3,) and h3.shape == (2, 3, 16)
    # episode_start resets the state: the same as starting from None
    _, (h_next, _) = model.predict(obs, state=state, episode_start=np.array([False]))
    _, (h_reset, _) = model.predict(obs, state=state, episode_start=np.array([True]))
    _, (h_fresh, _) = model.predict(obs)
    assert not np.allclose(h_next, h_fresh)
    np.testing.assert_allclose(h_reset, h_fresh)


def test_predict_with_a_wrong_state_says_what_it_expects():
    model = _ppo()
    obs = np.zeros(4, dtype=np.float32)
    with pytest.raises(EnvError, match=r"the \(h, c\) pair the previous predict returned"):
        model.predict(obs, state=np.zeros((1, 1, 16)))
    with pytest.raises(EnvError, match="episode_start has 2 entries for 1 observation"):
        model.predict(obs, episode_start=np.array([True, False]))


def test_save_load_keeps_the_policy_and_predictions(tmp_path):
    model = _ppo(policy_kwargs={"enable_critic_lstm": False, "lstm_hidden_size": 8})
    model.learn(512)
    model.save(tmp_path / "m.zip")
    loaded = PPO.load(tmp_path / "m.zip", device="cpu")
    assert isinstance(loaded.policy, RecurrentActorCriticPolicy)
    assert loaded.config.policy == "MlpLstmPolicy" and loaded.policy.lstm_critic is None
    env = gym.make("CartPoleNoVel-v1")
    obs, _ = env.reset(seed=1)
    state_a = state_b = None
    for _ in range(30):
        a, state_a = model.predict(obs, state=state_a)
        b, state_b = loaded.predict(obs, state=state_b)
        assert a == b
        obs, _, terminated, truncated, _ = env.step(a)
        if terminated or truncated:
            obs, _ = env.reset()
            state_a = state_b = None
    assert state_a is not None
    np.testing.assert_allclose(state_a[0], state_b[0])


def test_evaluate_policy_carries_the_state():
    model = _ppo(MemoryEnv(delay=3), n_envs=1, n_steps=32, hidden=8)
    mean, _ = pgrl.evaluate_policy(model, MemoryEnv(delay=3), n_eval_episodes=4)
    assert -1.0 <= mean <= 1.0
    returns, lengths = pgrl.evaluate_policy(model, MemoryEnv(delay=3), n_eval_episodes=4,
                                            return_episode_rewards=True)
    assert lengths == [4] * 4


# -- spaces, masks, algorithms ------------------------------------------------------------------------
@pytest.mark.parametrize("policy,env", [
    ("CnnLstmPolicy", partial(QuadrantImageEnv, ep_length=10)),
    ("MultiInputLstmPolicy", partial(DictObsEnv, ep_length=10)),
])
def test_image_and_dict_observations_with_an_lstm(policy, env):
    model = _ppo(env, policy=policy, n_envs=2, n_steps=32)
    rollout = model.collect()
    obs, actions = flatten(rollout.obs), flatten(rollout.actions)
    for idx, seqs in batches(model.policy, rollout, 32):
        log_probs, _, _ = model.policy.evaluate(obs[idx], actions[idx], None, seqs)
        torch.testing.assert_close(log_probs, flatten(rollout.log_probs)[idx], atol=1e-5, rtol=0)
    model.learn(128)
    model.predict(env().reset(seed=0)[0])


@pytest.mark.parametrize("entries", [None, 2])
def test_masks_with_an_lstm_never_sample_an_invalid_action(entries):
    task = {"dim": 10, "n_invalid": 8, "entries": entries, "ep_length": 20}
    model = _ppo(partial(InvalidActionEnv, **task), n_envs=2)
    model.learn(1024)
    assert sum(env.unwrapped.invalid_actions for env in model.env.vec.envs) == 0
    env = InvalidActionEnv(**task)
    pgrl.evaluate_policy(model, env, n_eval_episodes=2, deterministic=False)
    obs, _ = env.reset(seed=3)
    state = None
    for _ in range(20):
        action, state = model.predict(obs, state=state, deterministic=False, action_masks=env.action_masks())
        obs, *_ = env.step(action)
    assert env.invalid_actions == 0


def test_a2c_trains_an_lstm_policy():
    model = A2C("MlpLstmPolicy", _short_episodes(), seed=0, device="cpu", policy_kwargs={"lstm_hidden_size": 8})
    assert model.policy.recurrent and model.policy.lstm_critic is not None
    before = {k: v.clone() for k, v in model.policy.state_dict().items()}
    model.learn(200)
    assert any(not torch.equal(before[k], v) for k, v in model.policy.state_dict().items() if "lstm" in k)


def test_presets_of_the_other_policy_kind_drop_only_what_that_kind_has():
    model = A2C("MlpLstmPolicy", "CartPole-v1", device="cpu", policy_kwargs={"lstm_hidden_size": 8})
    assert model.config.policy_kwargs.shared is False and model.policy.recurrent  # the preset's MLP trunk
    assert model.config.n_steps == A2C("MlpPolicy", "CartPole-v1").config.n_steps  # the rest of the preset
    mlp = PPO("MlpPolicy", "CartPoleNoVel-v1", device="cpu", preset="fast")  # an LSTM preset, an MLP policy
    assert not mlp.policy.recurrent and mlp.config.n_envs == 64 and mlp.config.normalize
    assert PPO(None, "CartPoleNoVel-v1", device="cpu", preset="fast").policy.lstm_hidden_size == 64


@pytest.mark.parametrize("cls", [REINFORCE, TRPO])
def test_algorithms_without_lstm_support_say_which_do(cls):
    with pytest.raises(ConfigError, match=r"does not train LSTM policies .*ppo.*a2c|a2c.*ppo"):
        cls("MlpLstmPolicy", "CartPole-v1", device="cpu")


def test_lstm_kwargs_on_a_feed_forward_policy_are_refused():
    with pytest.raises(ConfigError, match="lstm_hidden_size .*use policy=MlpLstmPolicy"):
        PPO("MlpPolicy", "CartPole-v1", policy_kwargs={"lstm_hidden_size": 32})
    with pytest.raises(ConfigError, match="shared_lstm=true and enable_critic_lstm=true"):
        PPO("MlpLstmPolicy", "CartPole-v1", policy_kwargs={"shared_lstm": True})
    with pytest.raises(ConfigError, match="lstm_kwargs batch_first"):
        PPO("MlpLstmPolicy", "CartPole-v1", policy_kwargs={"lstm_kwargs": {"batch_first": True}})


def test_batched_seeds_and_ray_refuse_lstm_policies():
    from pgrl.batched import BatchedPPO, batched_unsupported, build_models
    from pgrl.distributed import RayOptions, build_model

    assert "LSTM policy" in batched_unsupported("ppo", "CartPoleNoVel-v1")
    assert batched_unsupported("ppo", "CartPole-v1") is None
    with pytest.raises(ConfigError, match="LSTM policy"):
        BatchedPPO(*build_models("CartPoleNoVel-v1", [0, 1], device="cpu"))
    with pytest.raises(ConfigError, match="drop --ray"):
        build_model("ppo", "CartPoleNoVel-v1", RayOptions(num_workers=1), device="cpu")


# -- the partially observed ids ---------------------------------------------------------------------
@pytest.mark.parametrize("env_id,zeroed", [("CartPole-v1", [1, 3]), ("Pendulum-v1", [2]),
                                           ("MountainCar-v0", [1]), ("MountainCarContinuous-v0", [1])])
def test_no_velocity_ids_hide_the_velocities_natively_and_in_gymnasium(env_id, zeroed):
    novel = env_id.replace("-v", "NoVel-v")
    gym_env, full = gym.make(novel), gym.make(env_id)
    assert gym_env.observation_space == full.observation_space
    assert gym_env.spec.max_episode_steps == full.spec.max_episode_steps
    obs, _ = gym_env.reset(seed=0)
    reference, _ = full.reset(seed=0)
    keep = [i for i in range(len(obs)) if i not in zeroed]
    assert np.all(obs[zeroed] == 0) and np.array_equal(obs[keep], reference[keep])
    native = make_native(novel, 3, seed=0)
    assert native.single_observation_space == full.observation_space
    native.reset(seed=0)
    step = native.step(torch.as_tensor(np.stack([native.single_action_space.sample() for _ in range(3)])))
    assert torch.all(step.obs[:, zeroed] == 0) and torch.any(step.obs[:, keep] != 0)
    assert torch.allclose(step.obs[:, keep], native._observe(native.state)[:, keep])
