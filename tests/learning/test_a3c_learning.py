"""A3C (n-step returns) and A3C + GAE with two Hogwild workers solve CartPole-v1.

Solved means a greedy 100-episode mean >= 475 on Gymnasium's own CartPole-v1, evaluated after
training with the preset (its n_timesteps budget; it stops earlier once the last 100 training
episodes average its target_return).

Retry budget: A3C is not deterministic even with fixed seeds.  The seed fixes every worker's
environments and initial weights, but the two workers' updates interleave on the shared model in
an order the OS scheduler decides, so the curve differs from run to run (and from CPU to CPU), and
a seed is only a label for one draw.  Swept with this test's exact setup (preset, its budget,
2 Hogwild workers, 1 torch thread, greedy 100 episodes on Gymnasium's CartPole-v1; AMD EPYC
2-core machine, 2026-11; seconds are the whole attempt, training plus evaluation)::

    seed   default                               gae
    0      500.0 ± 0.0    127,040 steps  22 s    500.0 ± 0.0    103,488 steps  37 s
    1      500.0 ± 0.0    187,776 steps  33 s    500.0 ± 0.0     99,520 steps  33 s
    2      491.4 ± 23.5    88,256 steps  16 s    500.0 ± 0.0    115,648 steps  39 s
    3      500.0 ± 0.0    133,504 steps  29 s    181.6 ± 149.0  400,064 steps  72 s
    4      500.0 ± 0.0    187,136 steps  38 s    500.0 ± 0.0    104,448 steps  16 s

default solves 5/5 (worst 491.4, a margin of 16); gae misses 1 of 5 (seed 3 never reached its
target_return and ran the whole 400k budget), after 8/8 in the presets file's earlier sweep, so
one attempt misses about 1 time in 5 to 10.  With a single seed at 475 the test is a coin that
the scheduler or another CPU's rounding can flip.  So a test gets up to ATTEMPTS = 4 runs, with
seeds 0, 1, 2, 3 in turn, and passes as soon as one solves the task; the failure message lists
every attempt.  At a per-attempt miss rate of 0.2 all four miss with probability 0.16%, at 0.3
with 0.8%; a broken A3C, which solves no run, still fails.  The threshold stays 475 (a solved
CartPole).  Cost: one run (16-40 s) when the first attempt solves, as it did in 9 of these 10
runs; a miss costs its full budget (about 70 s) before the next attempt.
"""

from __future__ import annotations

import time

import pytest

import pgrl

ATTEMPTS = 4  # seeds 0-3; sized from the sweep in the module docstring
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
