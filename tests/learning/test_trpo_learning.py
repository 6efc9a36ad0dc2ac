"""TRPO solves CartPole-v1 and learns Pendulum-v1 with its presets and a fixed seed.

Greedy evaluation on Gymnasium's own environments (not pgrl's native copies) after training for
the preset's n_timesteps: CartPole-v1 mean >= 475 over 100 episodes, Pendulum-v1 mean >= -400
over 20 episodes (a random policy scores about -1200 to -1500).

Thresholds hold on any CPU (ARCHITECTURE.md rule 8).  This exact setup swept over seeds 0-4
(1 torch thread, AMD EPYC 2-core machine, 2026-11; training seconds on a loaded machine)::

    seed   CartPole-v1 (61,440 steps)   Pendulum-v1 (100,352 steps)
    0      500.0 ± 0.0   13 s           -166.9 ± 102.3   39 s
    1      500.0 ± 0.0   10 s           -176.9 ± 104.8   42 s
    2      500.0 ± 0.0    9 s           -189.5 ± 110.6   50 s
    3      500.0 ± 0.0    9 s           -187.5 ± 113.2   51 s
    4      500.0 ± 0.0   10 s           -201.2 ± 109.8   30 s

CartPole-v1 is solved on every seed with the largest margin there is (500), so one seed at 475
stays.  On Pendulum-v1 the old -250 was 49 above the worst seed: a 20-episode mean drops about
40 for each episode that fails to swing up (about -1000 instead of -150), so one unlucky episode
on another CPU's rounding would fail it.  -400 is the worst seed minus 200 (about five failed
swing-ups out of 20) and still 800 above a random policy, so the test fails when learning breaks.
"""

from __future__ import annotations

import pytest

import pgrl

SEED = 0


@pytest.mark.learning
@pytest.mark.parametrize(
    ("env_id", "n_episodes", "threshold"), [("CartPole-v1", 100, 475.0), ("Pendulum-v1", 20, -400.0)]
)
def test_trpo_solves(env_id, n_episodes, threshold):
    model = pgrl.TRPO("MlpPolicy", env_id, seed=SEED, device="cpu")
    model.learn()
    mean, std = pgrl.evaluate_policy(model, env_id, n_eval_episodes=n_episodes, backend="gymnasium")
    assert mean >= threshold, f"trpo reached {mean:.1f} ± {std:.1f} on {env_id} after {model.num_timesteps} steps"
