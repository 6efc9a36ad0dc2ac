"""pgrl's native batched classic-control envs against Gymnasium's, step for step.

The equivalence tests run the native env in float64 next to 64 Gymnasium envs
(``gym.make(id)``, so Gymnasium's own ``TimeLimit`` decides truncation), start both from the
same states and elapsed-step counters, feed the same actions and compare, at every step,
terminated and truncated (exactly), final observations, rewards, the float64 physical state,
the elapsed-step counters and the automatic resets.

Tolerances, and why:

* float64 states and rewards: atol 1e-10.  Torch and NumPy may round sin/cos differently in
  the last bit (the other operations are written in Gymnasium's order, so they round the same);
  the largest difference seen over whole episodes is ~1e-14 (Pendulum, 200 steps), while a
  wrong constant, sign or operation shows up at 1e-4 or more.
* observations: Gymnasium returns float32, so ours are cast to float32 and compared with
  rtol 2**-23 (one float32 ulp, for a float64 value that lands on the other side of a rounding
  boundary).
* MountainCarContinuous-v0 keeps its state in float32 and its arithmetic on it follows NumPy's
  promotion rules (float32 or float64 intermediates depending on the NumPy version), so it is
  compared at atol 2.5e-7 (two float32 ulps at |position| <= 1.2).

Trajectories are compared without re-syncing where they hold exactly (CartPole, MountainCar,
Pendulum: whole episodes agree to ~1e-14).  Acrobot is chaotic: last-bit differences in sin/cos
grow to ~1e-5 within an episode, and MountainCarContinuous drifts by float32 ulps, so for those
two Gymnasium's state is re-set from the native state after every step and each one-step
transition is compared.

Box actions are sampled as float32 (1.5x beyond the bounds, to exercise clipping) and given to
the native env as float32 and to Gymnasium as float64 arrays of the same values: Gymnasium's
arithmetic on a float32 action is float32 under NumPy 2 and float64 under NumPy 1, and the
float64 array makes it float64 under both, which is what the native env computes.

Random policies rarely leave the middle of the state space, so the lockstep runs also start
some copies next to the time limit, in states that terminate at once and in states that take
the clipping / wrapping branches, and a one-step test covers states spread over each whole
state box.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import pytest
import torch

from pgrl.envs.native import NATIVE_ENVS, make_native
from pgrl.errors import EnvError

ENV_IDS = ["CartPole-v1", "Acrobot-v1", "MountainCar-v0", "MountainCarContinuous-v0", "Pendulum-v1"]
F32_RTOL = 2.0**-23


def _as_f32(u) -> np.ndarray:
    return np.array(u.state, dtype=np.float32)


@dataclass(frozen=True)
class Case:
    max_episode_steps: int
    reset_low: tuple[float, ...]
    reset_high: tuple[float, ...]
    gym_obs: Callable  # Gymnasium's observation of its unwrapped env's current state
    near_terminal: tuple[float, ...] | None  # a state that terminates on the next step whatever the action
    edge_states: tuple[tuple[float, ...], ...]  # states that hit the clipping / wrapping branches
    resync: bool  # re-set Gymnasium's state from the native one after every step
    atol: float = 1e-10


CASES = {
    "CartPole-v1": Case(
        max_episode_steps=500,
        reset_low=(-0.05,) * 4,
        reset_high=(0.05,) * 4,
        gym_obs=_as_f32,
        near_terminal=(2.39, 1.0, 0.0, 0.0),
        edge_states=((-2.3, -3.0, 0.1, 2.5), (0.0, 0.0, -0.2, -1.0)),
        resync=False,
    ),
    "Acrobot-v1": Case(
        max_episode_steps=500,
        reset_low=(-0.1,) * 4,
        reset_high=(0.1,) * 4,
        gym_obs=lambda u: u._get_ob(),
        near_terminal=(3.0, 0.0, 0.0, 0.0),
        edge_states=((3.1, -3.1, 12.5, 28.0), (-3.1, 3.1, -12.5, -28.0), (1.0, 2.0, 6.0, -20.0)),
        resync=True,
    ),
    "MountainCar-v0": Case(
        max_episode_steps=200,
        reset_low=(-0.6, 0.0),
        reset_high=(-0.4, 0.0),
        gym_obs=_as_f32,
        near_terminal=(0.49, 0.05),
        edge_states=((-1.19, -0.07), (-0.5, 0.0699), (0.3, -0.0699)),
        resync=False,
    ),
    "MountainCarContinuous-v0": Case(
        max_episode_steps=999,
        reset_low=(-0.6, 0.0),
        reset_high=(-0.4, 0.0),
        gym_obs=_as_f32,
        near_terminal=(0.44, 0.05),
        edge_states=((-1.19, -0.07), (-0.5, 0.0699), (0.59, 0.07)),
        resync=True,
        atol=2.5e-7,
    ),
    "Pendulum-v1": Case(
        max_episode_steps=200,
        reset_low=(-math.pi, -1.0),
        reset_high=(math.pi, 1.0),
        gym_obs=lambda u: u._get_obs(),
        near_terminal=None,
        edge_states=((0.1, 7.9), (-0.1, -7.9), (50.0, 3.0), (-50.0, -3.0), (math.pi, 0.0)),
        resync=False,
    ),
}


def make_gym(env_id: str) -> gym.Env:
    env = gym.make(env_id, disable_env_checker=True)
    assert isinstance(env, gym.wrappers.TimeLimit)
    return env


def sample_actions(space: gym.Space, num_envs: int, generator: torch.Generator) -> torch.Tensor:
    if isinstance(space, gym.spaces.Discrete):
        return torch.randint(0, int(space.n), (num_envs,), generator=generator)
    high = torch.as_tensor(space.high)
    return (torch.rand(num_envs, *space.shape, generator=generator) * 2 - 1) * 1.5 * high


def gym_action(actions: torch.Tensor, i: int):
    if actions.dtype == torch.int64:
        return int(actions[i])
    return actions[i].numpy().astype(np.float64)


def sync_gym(env: gym.Env, native, i: int) -> None:
    """Put Gymnasium env ``env`` in native copy i's state (kept in the dtype Gymnasium holds it in)."""
    unwrapped = env.unwrapped
    unwrapped.state = native.state[i].numpy().astype(np.asarray(unwrapped.state).dtype)
    env._elapsed_steps = int(native.elapsed_steps[i])


def assert_reset_states(env_id: str, states: torch.Tensor) -> None:
    case = CASES[env_id]
    low = torch.tensor(case.reset_low, dtype=states.dtype)
    high = torch.tensor(case.reset_high, dtype=states.dtype)
    assert bool(((states >= low) & (states <= high)).all()), f"{env_id} reset states outside {low}..{high}"


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ---------------------------------------------------------------------------------------- spaces
def test_registry_holds_exactly_the_five_envs_and_their_no_velocity_versions():
    novel = {"CartPoleNoVel-v1", "PendulumNoVel-v1", "MountainCarNoVel-v0", "MountainCarContinuousNoVel-v0"}
    assert sorted(NATIVE_ENVS) == sorted(ENV_IDS + sorted(novel))


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_spaces_and_attributes_equal_gymnasiums(env_id):
    native = make_native(env_id, 3)
    reference = make_gym(env_id)
    for ours, theirs in [
        (native.single_observation_space, reference.observation_space),
        (native.single_action_space, reference.action_space),
    ]:
        assert type(ours) is type(theirs)
        assert ours == theirs
        assert ours.dtype == theirs.dtype
        if isinstance(theirs, gym.spaces.Box):
            np.testing.assert_array_equal(ours.low, theirs.low)
            np.testing.assert_array_equal(ours.high, theirs.high)
    assert native.env_id == env_id
    assert native.num_envs == 3
    assert native.device == torch.device("cpu")
    assert native.max_episode_steps == reference.spec.max_episode_steps == CASES[env_id].max_episode_steps
    assert native.state.shape == (3, len(CASES[env_id].reset_low))
    assert native.elapsed_steps.shape == (3,) and native.elapsed_steps.dtype == torch.int64


# ------------------------------------------------------------------------------- equivalence
def run_lockstep(env_id: str, num_envs: int = 64, steps: int = 500, seed: int = 0) -> dict[str, int]:
    """Step native (float64) and Gymnasium copies together and compare everything; returns counts."""
    case = CASES[env_id]
    native = make_native(env_id, num_envs, seed=seed, dtype=torch.float64)
    native.reset(seed=seed)
    envs = [make_gym(env_id) for _ in range(num_envs)]
    for i, env in enumerate(envs):
        env.reset(seed=seed + i)

    # Reach truncation, termination and both at once early: rows 4k count down to the time limit
    # (1..8 steps), rows 4k+1 start in a state that terminates at once (row 1 does both), rows
    # 4k+2 start in states that take the clipping / wrapping branches.
    limit = native.max_episode_steps
    rows = torch.arange(num_envs)
    near_limit = rows % 4 == 0
    native.elapsed_steps = torch.where(near_limit, limit - 1 - (rows // 4) % 8, native.elapsed_steps)
    # (Rounded to float32 values, which Gymnasium's float32 Acrobot reset state can hold exactly.)
    state = native.state.clone()
    if case.near_terminal is not None:
        state[rows % 4 == 1] = torch.tensor(case.near_terminal).double()
        native.elapsed_steps[1] = limit - 1
    for k, i in enumerate(range(2, num_envs, 4)):
        state[i] = torch.tensor(case.edge_states[k % len(case.edge_states)]).double()
    native.state = state
    for i, env in enumerate(envs):
        sync_gym(env, native, i)

    counts = {"terminated": 0, "truncated": 0, "both": 0, "resets": 0}
    generator = torch.Generator().manual_seed(seed)
    for t in range(steps):
        actions = sample_actions(native.single_action_space, num_envs, generator)
        step = native.step(actions)
        results = [env.step(gym_action(actions, i)) for i, env in enumerate(envs)]
        where = f"{env_id}, step {t}"

        terminated = torch.tensor([r[2] for r in results])
        truncated = torch.tensor([r[3] for r in results])
        assert torch.equal(step.terminated, terminated), where
        assert torch.equal(step.truncated, truncated), where
        final_obs = torch.as_tensor(np.stack([r[0] for r in results]))
        torch.testing.assert_close(step.final_obs.float(), final_obs, rtol=F32_RTOL, atol=case.atol, msg=where)
        rewards = torch.tensor([float(r[1]) for r in results], dtype=torch.float64)
        torch.testing.assert_close(step.rewards, rewards, rtol=0, atol=case.atol, msg=where)

        done = terminated | truncated
        going = ~done
        states = torch.as_tensor(np.stack([np.asarray(env.unwrapped.state, np.float64) for env in envs]))
        torch.testing.assert_close(native.state[going], states[going], rtol=0, atol=case.atol, msg=where)
        assert torch.equal(step.obs[going], step.final_obs[going]), where

        # Where an episode ended: obs is the first observation of a fresh episode.
        ended = done.nonzero().flatten().tolist()
        assert bool((native.elapsed_steps[done] == 0).all()), where
        assert_reset_states(env_id, native.state[done])
        for i in ended:
            envs[i].reset()
            sync_gym(envs[i], native, i)
            np.testing.assert_allclose(
                step.obs[i].float().numpy(), case.gym_obs(envs[i].unwrapped), rtol=F32_RTOL, atol=1e-10
            )
        if case.resync:
            for i in going.nonzero().flatten().tolist():
                sync_gym(envs[i], native, i)
        assert native.elapsed_steps.tolist() == [env._elapsed_steps for env in envs], where

        counts["terminated"] += int(terminated.sum())
        counts["truncated"] += int(truncated.sum())
        counts["both"] += int((terminated & truncated).sum())
        counts["resets"] += len(ended)
    return counts


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_native_matches_gymnasium_step_for_step(env_id):
    counts = run_lockstep(env_id)
    # The comparison covered every way an episode ends (otherwise the test proves less than it says).
    assert counts["truncated"] >= 16, counts
    if CASES[env_id].near_terminal is not None:
        assert counts["terminated"] >= 16 and counts["both"] >= 1, counts
    assert counts["resets"] == counts["terminated"] + counts["truncated"] - counts["both"]


# Boxes of states (beyond where episodes usually go) for one-step comparisons.
STATE_BOXES = {
    "CartPole-v1": (2.45, 3.0, 0.22, 3.5),
    "Acrobot-v1": (math.pi, math.pi, 4 * math.pi, 9 * math.pi),
    "MountainCar-v0": None,  # [min_position, max_position] x [-max_speed, max_speed]
    "MountainCarContinuous-v0": None,
    "Pendulum-v1": (20.0, 8.0),
}


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_one_step_transitions_across_the_state_space(env_id):
    """One step from 3000 states spread over the whole state box: every clip, wrap and threshold."""
    num_envs = 3000
    native = make_native(env_id, num_envs, seed=0, dtype=torch.float64)
    native.reset()
    generator = torch.Generator().manual_seed(1)
    unit = torch.rand(num_envs, native.state_dim, generator=generator, dtype=torch.float64)
    if STATE_BOXES[env_id] is None:
        low, high = torch.tensor([-1.2, -0.07]), torch.tensor([0.6, 0.07])
    else:
        high = torch.tensor(STATE_BOXES[env_id])
        low = -high
    states = (low + (high - low) * unit).float().double()  # float32 values: exact in every Gymnasium env
    native.state = states.clone()
    actions = sample_actions(native.single_action_space, num_envs, generator)
    step = native.step(actions)

    env = make_gym(env_id).unwrapped
    env.reset(seed=0)
    results = []
    next_states = []
    for i in range(num_envs):
        env.state = states[i].numpy()
        env.steps_beyond_terminated = None  # CartPole's memory of a previous termination (unused elsewhere)
        results.append(env.step(gym_action(actions, i)))
        next_states.append(np.asarray(env.state, dtype=np.float64))
    atol = CASES[env_id].atol
    torch.testing.assert_close(
        step.final_obs.float(), torch.as_tensor(np.stack([r[0] for r in results])), rtol=F32_RTOL, atol=atol
    )
    torch.testing.assert_close(
        step.rewards, torch.tensor([float(r[1]) for r in results], dtype=torch.float64), rtol=0, atol=atol
    )
    assert step.terminated.tolist() == [r[2] for r in results]
    going = ~step.terminated
    torch.testing.assert_close(native.state[going], torch.as_tensor(np.stack(next_states))[going], rtol=0, atol=atol)


# ------------------------------------------------------------------------------- episode ends
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_final_obs_is_the_terminal_observation_and_obs_a_fresh_episode(env_id):
    case = CASES[env_id]
    native = make_native(env_id, 4, seed=3, dtype=torch.float64)
    native.reset()
    if case.near_terminal is not None:
        native.state[0] = torch.tensor(case.near_terminal, dtype=torch.float64)
    native.elapsed_steps[0] = native.max_episode_steps - 1 if case.near_terminal is None else 0
    native.elapsed_steps[1] = native.max_episode_steps - 1
    before = native.state.clone()
    actions = sample_actions(native.single_action_space, 4, torch.Generator().manual_seed(0))
    step = native.step(actions)

    if case.near_terminal is not None:
        assert step.terminated.tolist()[0] and not step.truncated.tolist()[0]
    else:
        assert step.truncated.tolist()[0] and not step.terminated.tolist()[0]
    assert step.truncated.tolist()[1]
    assert not (step.terminated[2:] | step.truncated[2:]).any()
    # final_obs is where the step went: the same as a Gymnasium env stepped from that state.
    for i in (0, 1):
        env = make_gym(env_id)
        env.reset(seed=0)
        env.unwrapped.state = before[i].numpy()
        terminal_obs = env.step(gym_action(actions, i))[0]
        np.testing.assert_allclose(step.final_obs[i].float().numpy(), terminal_obs, rtol=F32_RTOL, atol=3e-7)
        assert not torch.equal(step.obs[i], step.final_obs[i])
    # obs of those rows is a fresh episode, the others go on.
    assert native.elapsed_steps.tolist() == [0, 0, 1, 1]
    assert_reset_states(env_id, native.state[:2])
    torch.testing.assert_close(step.obs[:2], native._observe(native.state[:2]))
    torch.testing.assert_close(step.obs[2:], step.final_obs[2:])


def test_continuous_mountain_car_keeps_a_float32_state_like_gymnasium():
    native = make_native("MountainCarContinuous-v0", 16, seed=0, dtype=torch.float64)
    native.reset()
    native.step(torch.rand(16, 1) * 2 - 1)
    assert torch.equal(native.state, native.state.float().double())


def test_truncated_and_terminated_both_true_at_the_limit():
    native = make_native("CartPole-v1", 2, seed=0, max_episode_steps=10)
    native.reset()
    native.state[0] = torch.tensor([2.39, 1.0, 0.0, 0.0])
    native.elapsed_steps[:] = 9
    step = native.step(torch.tensor([1, 1]))
    assert step.terminated.tolist() == [True, False]
    assert step.truncated.tolist() == [True, True]
    assert step.rewards.tolist() == [1.0, 1.0]  # CartPole-v1 rewards the terminating step too


# ---------------------------------------------------------------------------------------- resets
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_reset_states_span_gymnasiums_ranges(env_id):
    case = CASES[env_id]
    low, high = torch.tensor(case.reset_low), torch.tensor(case.reset_high)
    # The ranges in CASES are Gymnasium's: its own resets fall in them.
    env = make_gym(env_id)
    gym_states = []
    for k in range(100):
        env.reset(seed=k)
        gym_states.append(np.asarray(env.unwrapped.state, dtype=np.float64))
    assert_reset_states(env_id, torch.as_tensor(np.stack(gym_states)))

    native = make_native(env_id, 4096, seed=1)
    obs = native.reset()
    assert obs.dtype == torch.float32 and obs.shape == (4096, *native.single_observation_space.shape)
    states = native.state.double()
    assert_reset_states(env_id, states)
    span = high - low
    varying = span > 0
    assert bool((states.min(0).values - low <= 0.01 * span)[varying].all())
    assert bool((high - states.max(0).values <= 0.01 * span)[varying].all())
    assert bool(((states.mean(0) - (low + high) / 2).abs() <= 0.03 * span + 1e-12).all())
    assert native.single_observation_space.contains(obs[0].numpy())


# --------------------------------------------------------------------------------------- seeding
def rollout(env_id: str, seed: int, steps: int = 150) -> list[torch.Tensor]:
    native = make_native(env_id, 32, seed=seed, max_episode_steps=20)  # many automatic resets
    out = [native.reset(seed=seed)]
    generator = torch.Generator().manual_seed(123)
    for _ in range(steps):
        step = native.step(sample_actions(native.single_action_space, 32, generator))
        out += [step.obs, step.rewards, step.terminated, step.truncated, step.final_obs]
    return out


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_same_seed_same_trajectory(env_id):
    first, second = rollout(env_id, seed=7), rollout(env_id, seed=7)
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))
    assert not torch.equal(first[0], rollout(env_id, seed=8, steps=0)[0])
    # Copies differ from each other, and reset(seed) on a used env starts over.
    assert len(torch.unique(first[0], dim=0)) == 32
    native = make_native(env_id, 32, seed=7, max_episode_steps=20)
    native.reset(seed=1)
    native.step(sample_actions(native.single_action_space, 32, torch.Generator().manual_seed(0)))
    assert torch.equal(native.reset(seed=7), first[0])


def test_constructor_seed_seeds_reset_without_seed():
    a = make_native("Pendulum-v1", 8, seed=5)
    b = make_native("Pendulum-v1", 8)
    assert torch.equal(a.reset(), b.reset(seed=5))


# ------------------------------------------------------------------------------ float32 default
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_float32_env_stays_float32_and_close_to_float64(env_id):
    single = make_native(env_id, 64, seed=2)
    double = make_native(env_id, 64, seed=2, dtype=torch.float64)
    double.reset()
    single.reset()
    generator = torch.Generator().manual_seed(0)
    for _ in range(30):
        single.state = double.state.float()
        single.elapsed_steps = double.elapsed_steps.clone()
        actions = sample_actions(single.single_action_space, 64, generator)
        ours, reference = single.step(actions), double.step(actions)
        for value in (ours.obs, ours.final_obs, ours.rewards, single.state):
            assert value.dtype == torch.float32
        torch.testing.assert_close(ours.final_obs, reference.final_obs.float(), rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(ours.rewards, reference.rewards.float(), rtol=1e-4, atol=1e-4)
        assert torch.equal(ours.terminated, reference.terminated)
        assert torch.equal(ours.truncated, reference.truncated)


# ------------------------------------------------------------------------------------- errors
def test_bad_inputs_raise_clear_errors():
    with pytest.raises(EnvError, match="LunarLander-v3"):
        make_native("LunarLander-v3", 4)
    with pytest.raises(EnvError, match="num_envs"):
        make_native("CartPole-v1", 0)
    with pytest.raises(EnvError, match="dtype"):
        make_native("CartPole-v1", 2, dtype=torch.float16)
    native = make_native("CartPole-v1", 2)
    with pytest.raises(RuntimeError, match="reset"):
        native.step(torch.tensor([0, 1]))
    native.reset(seed=0)
    with pytest.raises(ValueError, match=r"shape \[2\]"):
        native.step(torch.tensor([0, 1, 1]))
    with pytest.raises(ValueError, match="integer"):
        native.step(torch.tensor([0.0, 1.0]))
    pendulum = make_native("Pendulum-v1", 2)
    pendulum.reset(seed=0)
    with pytest.raises(ValueError, match=r"shape \[2, 1\]"):
        pendulum.step(torch.zeros(2))


def test_max_episode_steps_override():
    native = make_native("Pendulum-v1", 3, seed=0, max_episode_steps=5)
    native.reset()
    truncations = [native.step(torch.zeros(3, 1)).truncated.tolist() for _ in range(10)]
    assert [row[0] for row in truncations] == [False] * 4 + [True] + [False] * 4 + [True]


# ------------------------------------------------------------------------------------- CUDA
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_cuda_matches_cpu_without_host_sync(env_id):
    cpu = make_native(env_id, 256, seed=0, dtype=torch.float64, max_episode_steps=25)
    gpu = make_native(env_id, 256, seed=0, device="cuda", dtype=torch.float64, max_episode_steps=25)
    assert gpu.device.type == "cuda"
    cpu.reset()
    gpu.reset()
    generator = torch.Generator().manual_seed(0)
    for _ in range(60):
        gpu.state, gpu.elapsed_steps = cpu.state.cuda(), cpu.elapsed_steps.cuda()
        actions = sample_actions(cpu.single_action_space, 256, generator)
        gpu_actions = actions.cuda()
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            ours = gpu.step(gpu_actions)
        finally:
            torch.cuda.set_sync_debug_mode("default")
        reference = cpu.step(actions)
        assert ours.obs.device.type == "cuda" and ours.terminated.device.type == "cuda"
        torch.testing.assert_close(ours.final_obs.cpu(), reference.final_obs, rtol=0, atol=1e-9)
        torch.testing.assert_close(ours.rewards.cpu(), reference.rewards, rtol=0, atol=1e-9)
        assert torch.equal(ours.terminated.cpu(), reference.terminated)
        assert torch.equal(ours.truncated.cpu(), reference.truncated)
        assert torch.equal(gpu.elapsed_steps.cpu(), cpu.elapsed_steps)
        assert_reset_states(env_id, gpu.state.cpu()[reference.terminated | reference.truncated])
