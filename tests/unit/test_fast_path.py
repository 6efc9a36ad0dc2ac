"""The fast path (pgrl.fast): its kernels give the torch path's results to float32 rounding.

Each test runs the same thing twice from the same seed, with fast_path="off" (torch) and "on"
(the kernels), and compares: a PPO update on one stored rollout (parameters, Adam's state,
metrics), a native CartPole rollout (every stored tensor, the env and the random streams), and
whole short trainings.  Also: where the fast path applies and what "on" says where it cannot.
"""

from __future__ import annotations

import copy
from functools import partial

import numpy as np
import pytest
import torch

import pgrl
from pgrl.envs.identity import InvalidActionEnv
from pgrl.errors import ConfigError

pytest.importorskip("numba")

from pgrl.fast import kernels  # noqa: E402

SMALL_PPO = {"n_envs": 4, "n_steps": 32, "batch_size": 32, "n_epochs": 3}

UPDATE_CASES = {
    "discrete": ("CartPole-v1", {}),
    "discrete-vf-clip-kl": ("CartPole-v1", {"clip_range_vf": 0.1, "kl_coef": 0.3, "ent_coef": 0.01}),
    "target-kl": ("CartPole-v1", {"target_kl": 0.002, "learning_rate": 3e-3}),
    "relu-uneven": ("CartPole-v1", {"policy_kwargs": {"activation_fn": "relu",
                                                      "net_arch": {"pi": [32], "vf": [16, 24]}},
                                    "normalize_advantage": False, "max_grad_norm": None}),
    "gaussian": ("Pendulum-v1", {"policy_kwargs": {"log_std_init": -0.5}, "ent_coef": 0.02}),
    "masked": (partial(InvalidActionEnv, dim=6, n_invalid=3, ep_length=10), {"ent_coef": 0.01}),
}


def _pair(env, **kwargs):
    torch_path = pgrl.PPO("MlpPolicy", env, seed=3, fast_path="off", **{**SMALL_PPO, **kwargs})
    fast = pgrl.PPO("MlpPolicy", env, seed=3, fast_path="on", **{**SMALL_PPO, **kwargs})
    assert torch_path.fast is None and fast.fast is not None
    return torch_path, fast


def _close(a: torch.Tensor, b: torch.Tensor, what: str, tol: float = 2e-5) -> None:
    scale = max(float(a.abs().max()), 1.0)
    assert float((a - b).abs().max()) <= tol * scale, f"{what}: max difference {float((a - b).abs().max())}"


@pytest.mark.parametrize("case", list(UPDATE_CASES))
def test_ppo_update_equals_the_torch_path(case):
    env, kwargs = UPDATE_CASES[case]
    torch_path, fast = _pair(env, **kwargs)
    rollout = torch_path.collector().collect(torch_path.config.n_steps)
    stops = []
    for _ in range(2):  # the second update starts from Adam's state the first one left
        torch.manual_seed(11)
        expected = torch_path.update(rollout, 0.7)
        torch.manual_seed(11)
        got = fast.update(rollout, 0.7)
        assert got["stats/n_updates"] == expected["stats/n_updates"]
        assert got["stats/early_stop"] == expected["stats/early_stop"]
        assert set(got) == set(expected)
        for key in {"loss/policy", "loss/value", "loss/entropy", "stats/approx_kl", "stats/clip_frac"} & set(got):
            assert float(got[key]) == pytest.approx(float(expected[key]), rel=1e-3, abs=1e-5), key
        for (name, p), q in zip(torch_path.policy.named_parameters(), fast.policy.parameters(), strict=True):
            _close(p.detach(), q.detach(), name)
            a, b = torch_path.optimizer.state[p], fast.optimizer.state[q]
            assert float(a["step"]) == float(b["step"])
            _close(a["exp_avg"], b["exp_avg"], f"{name} exp_avg", tol=1e-4)
            _close(a["exp_avg_sq"], b["exp_avg_sq"], f"{name} exp_avg_sq", tol=1e-4)
        stops.append((expected["stats/n_updates"], expected["stats/early_stop"]))
    if case == "target-kl":  # the case tests a stop part-way through the epochs
        assert any(n > 0 and stopped for n, stopped in stops), stops


def test_the_fast_update_steps_the_parameters_and_state_torch_sees():
    """Parameters and Adam's moments stay torch tensors (views of the kernels' buffers): a checkpoint's
    state_dict and the torch path see every kernel step, and a load that replaces them is picked up."""
    _, fast = _pair("CartPole-v1")
    rollout = fast.collector().collect(fast.config.n_steps)
    before = {k: v.clone() for k, v in fast.policy.state_dict().items()}
    fast.update(rollout, 1.0)
    after = fast.policy.state_dict()
    assert all(not torch.equal(before[k], after[k]) for k in before if k.endswith("weight"))
    saved_policy = copy.deepcopy(fast.policy.state_dict())
    saved_optim = copy.deepcopy(fast.optimizer.state_dict())
    torch.manual_seed(0)
    first = fast.update(rollout, 1.0)
    fast.policy.load_state_dict(saved_policy)
    fast.optimizer.load_state_dict(saved_optim)  # replaces the state tensors: the kernel re-points them
    torch.manual_seed(0)
    again = fast.update(rollout, 1.0)
    assert float(first["loss/value"]) == float(again["loss/value"])


@pytest.mark.parametrize(("algo", "seed"), [("ppo", 0), ("ppo", 1), ("a2c", 0)])  # a2c's preset: a shared trunk
def test_native_cartpole_rollout_equals_the_torch_path(algo, seed):
    kwargs = {"n_envs": 4, "n_steps": 96, **({"batch_size": 96} if algo == "ppo" else {})}
    cls = pgrl.ALGORITHMS[algo]
    torch_path = cls("MlpPolicy", "CartPole-v1", seed=seed, fast_path="off", **kwargs)
    fast = cls("MlpPolicy", "CartPole-v1", seed=seed, **kwargs)
    a, b = torch_path.collector(), fast.collector()
    assert a.fast is None and b.fast is not None
    torch.manual_seed(5)
    ra = a.collect(96)
    torch.manual_seed(5)
    rb = b.collect(96)
    assert torch.equal(ra.actions, rb.actions)
    assert torch.equal(ra.terminated, rb.terminated) and torch.equal(ra.truncated, rb.truncated)
    assert torch.equal(ra.rewards, rb.rewards)
    assert bool(ra.terminated.any())  # episodes ended and restarted inside the rollout
    _close(ra.obs, rb.obs, "obs", 1e-4)
    _close(ra.next_obs, rb.next_obs, "next_obs", 1e-4)
    _close(ra.log_probs, rb.log_probs, "log_probs", 1e-4)
    assert ra.episode_returns == rb.episode_returns and ra.episode_lengths == rb.episode_lengths
    assert torch.equal(a.episode_return, b.episode_return) and torch.equal(a.episode_length, b.episode_length)
    assert torch.equal(a.env.elapsed_steps, b.env.elapsed_steps)
    _close(a.env.state, b.env.state, "env state", 1e-4)
    _close(a.obs, b.obs, "collector obs", 1e-4)
    assert torch.equal(a.env.generator.get_state(), b.env.generator.get_state())
    assert torch.equal(a.last_step.terminated, b.last_step.terminated)


def test_random_streams_advance_as_the_torch_path():
    torch_path = pgrl.PPO("MlpPolicy", "CartPole-v1", seed=0, fast_path="off", n_envs=2, n_steps=16,
                          batch_size=32)
    fast = pgrl.PPO("MlpPolicy", "CartPole-v1", seed=0, fast_path="on", n_envs=2, n_steps=16, batch_size=32)
    torch.manual_seed(9)
    torch_path.collector().collect(16)
    after_torch = torch.get_rng_state()
    torch.manual_seed(9)
    fast.collector().collect(16)
    assert torch.equal(after_torch, torch.get_rng_state())


def test_short_training_ends_where_the_torch_path_does():
    runs = {}
    for path in ("off", "on"):
        model = pgrl.PPO("MlpPolicy", "CartPole-v1", seed=2, fast_path=path, n_envs=4, n_steps=64, batch_size=64,
                         n_epochs=4)
        model.learn(1024)
        runs[path] = model
    for (name, p), q in zip(runs["off"].policy.named_parameters(), runs["on"].policy.parameters(), strict=True):
        _close(p.detach(), q.detach(), name, 1e-4)


def test_where_the_fast_path_applies():
    assert pgrl.PPO("MlpPolicy", "CartPole-v1", seed=0).fast is not None  # auto
    assert pgrl.PPO("MlpPolicy", "CartPole-v1", seed=0, fast_path="off").fast is None
    wide = pgrl.PPO("MlpPolicy", "CartPole-v1", seed=0, policy_kwargs={"net_arch": [512]})
    assert wide.fast is None  # auto: torch's matmuls are faster there
    assert pgrl.PPO("MlpPolicy", "CartPole-v1", seed=0, fast_path="on", policy_kwargs={"net_arch": [512]}).fast
    shared = pgrl.PPO("MlpPolicy", "CartPole-v1", seed=0, policy_kwargs={"shared": True})
    assert shared.fast is None
    # rollouts: only the native CartPole; other envs keep the step-by-step collector
    assert pgrl.PPO("MlpPolicy", "Pendulum-v1", seed=0).collector().fast is None
    assert pgrl.PPO("MlpPolicy", "CartPole-v1", seed=0, normalize=True).collector().fast is None
    a2c = pgrl.A2C("MlpPolicy", "CartPole-v1", seed=0)  # its preset shares one trunk: acting takes that
    assert a2c.policy.shared and a2c.collector().fast is not None


@pytest.mark.parametrize(("algo", "kwargs", "words"), [
    ("ppo", {"policy_kwargs": {"shared": True}}, "separate actor and critic"),
    ("ppo", {"policy": "MlpLstmPolicy"}, "feed-forward"),
    ("ppo", {"optimizer": "rmsprop"}, "Adam"),
    ("a2c", {}, "a2c has no fast update"),
])
def test_fast_path_on_says_why_it_cannot_apply(algo, kwargs, words):
    policy = kwargs.pop("policy", "MlpPolicy")
    with pytest.raises(ConfigError, match=words):
        pgrl.Algorithm.registry[algo](policy, "CartPole-v1", seed=0, fast_path="on", **kwargs)


def test_fast_path_is_validated():
    with pytest.raises(ConfigError, match="fast_path"):
        pgrl.PPO("MlpPolicy", "CartPole-v1", seed=0, fast_path="sometimes")


def test_kernel_tanh_is_tanh_to_float32_rounding():
    x = np.linspace(-20, 20, 400_001, dtype=np.float32)
    y = x.copy()
    kernels.tanh_(y)
    assert np.abs(y - np.tanh(x.astype(np.float64))).max() < 5e-7
    assert np.all(np.abs(y) <= 1.0)


def test_kernel_cartpole_step_is_the_native_env_step():
    from pgrl.envs.native.cartpole import CartPole

    env = CartPole(256, seed=0)
    env.reset(seed=0)
    env.state = (torch.rand(256, 4) - 0.5) * torch.tensor([4.0, 3.0, 0.4, 3.0])
    start = env.state.clone()
    actions = torch.randint(0, 2, (256,))
    step = env.step(actions)
    from pgrl.fast import CartPoleRollout

    consts = CartPoleRollout.physics()
    out = np.zeros(4, np.float32)
    for i in range(256):
        terminated = kernels.cartpole_step(consts, start[i].numpy(), int(actions[i]), out)
        assert terminated == bool(step.terminated[i])
        np.testing.assert_allclose(out, step.final_obs[i].numpy(), rtol=1e-5, atol=1e-6)


def test_a_deep_copy_trains_on_its_own_buffers():
    model = pgrl.PPO("MlpPolicy", "CartPole-v1", seed=0, n_envs=4, n_steps=32, batch_size=64)
    model.learn(256)
    twin = copy.deepcopy(model)
    twin.learn(256)  # the copy's parameters are new tensors: its kernels re-point them at a buffer of its own
    for p, q in zip(model.policy.parameters(), twin.policy.parameters(), strict=True):
        assert p.data_ptr() != q.data_ptr()
    assert any(not torch.equal(p, q) for p, q in zip(model.policy.parameters(), twin.policy.parameters(),
                                                      strict=True))


def test_cli_flag_sets_the_fast_path(tmp_path):
    import json

    from pgrl.cli import main

    out = tmp_path / "run"
    main(["train", "ppo", "CartPole-v1", "--total-timesteps", "512", "--fast-path", "off", "--out", str(out),
          "--no-progress", "--eval-episodes", "0"])
    assert json.loads((out / "config.json").read_text())["config"]["fast_path"] == "off"
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "ppo", "CartPole-v1", "--fast-path", "sometimes"])
    assert exit_info.value.code == 2
