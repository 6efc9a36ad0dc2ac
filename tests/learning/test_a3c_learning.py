"""A3C (n-step returns) and A3C + GAE with two Hogwild workers solve CartPole-v1.

Solved means a greedy 100-episode mean >= 475 on Gymnasium's own CartPole-v1, evaluated after
training with the preset (its n_timesteps budget; it stops earlier once the last 100 training
episodes average its target_return).

Retry budget: A3C is not deterministic even with fixed seeds.  The seed fixes every worker's
environments and initial weights, but the two workers' updates interleave on the shared model in
an order the OS scheduler decides, so the curve differs from run to run.  A test therefore gets
up to ATTEMPTS runs, with seeds 0, 1, 2 in turn, and passes as soon as one run solves the task;
the failure message lists every attempt.  (Measured on the 2-core dev machine: the first attempt
solves in nearly every run; see the presets file for steps and seconds.)
"""

from __future__ import annotations

import time

import pytest

import pgrl

ATTEMPTS = 3
THRESHOLD = 475.0


@pytest.mark.learning
@pytest.mark.parametrize("preset", ["default", "gae"])
def test_a3c_solves_cartpole_with_two_workers(preset):
    attempts = []
    for seed in range(ATTEMPTS):
        started = time.monotonic()
        model = pgrl.A3C("MlpPolicy", "CartPole-v1", seed=seed, preset=preset)
        assert model.config.n_workers == 2
        model.learn()
        mean, std = pgrl.evaluate_policy(model, "CartPole-v1", 100, backend="gymnasium")
        attempts.append(
            f"seed {seed}: {mean:.1f} ± {std:.1f} after {model.num_timesteps} steps "
            f"in {time.monotonic() - started:.0f} s"
        )
        if mean >= THRESHOLD:
            return
    pytest.fail(f"a3c preset {preset!r} did not reach {THRESHOLD} in {ATTEMPTS} attempts: " + "; ".join(attempts))
