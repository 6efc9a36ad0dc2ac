"""Each synchronous algorithm solves CartPole-v1 and learns Pendulum-v1 with its preset.

Greedy evaluation on Gymnasium's own environments (not pgrl's native copies) after training for
the preset's n_timesteps: CartPole-v1 over 100 episodes, Pendulum-v1 over 20.

Thresholds hold on any CPU (docs: ARCHITECTURE.md rule 8).  Each test's exact setup was swept over
seeds 0-4 (greedy mean, 1 torch thread, AMD EPYC 2-core machine, 2026-11; seconds are training
time on a loaded machine, about 3x the idle figure):

CartPole-v1 (100 episodes; seconds are training time)::

    seed   reinforce            vpg                  actor_critic         a2c            ppo
           (~202k steps)        (~101k steps)        (100,000 steps)      (200,000)      (100,096)
    0      500.0 ± 0.0   27 s   498.9 ± 10.6  23 s   500.0 ± 0.0   30 s   500.0   34 s   500.0   49 s
    1      500.0 ± 0.0   29 s   498.8 ± 11.1  23 s   500.0 ± 0.0   36 s   500.0   45 s   500.0   41 s
    2      498.3 ± 11.8  29 s   495.0 ± 22.3  18 s   391.6 ± 15.1  26 s   500.0   52 s   500.0   36 s
    3      496.1 ± 19.0  26 s   500.0 ± 0.0   20 s   500.0 ± 0.0   29 s   500.0   46 s   500.0   35 s
    4      455.5 ± 77.6  21 s   497.2 ± 16.5  21 s   500.0 ± 0.0   23 s   500.0   27 s   500.0   54 s

(a2c and ppo: std 0.0 on every seed.)  vpg, a2c and ppo solve 5/5 with margin (worst 495.0), but
reinforce (seed 4: 455.5) and actor_critic (seed 2: 391.6) miss on 1 of 5 seeds: a single seed
at 475 is a coin that another CPU's rounding can flip, and a lowered threshold would have to go
below 391 (no longer "solved").  So each algorithm trains seeds 0, 1, 2, 3 in turn and passes as
soon as one is solved (k = 1 of n = 4, CARTPOLE_SEEDS): at the per-seed miss rate seen (1 in 5)
all four miss with probability 0.2%, while a broken algorithm, which solves no seed, still fails.
The threshold stays 475.  Cost: one run when seed 0 solves (every algorithm here), one more run
for each seed that misses.  Torch thread count and oneDNN do not change these runs at all
(bit-identical forward/backward of the policy MLP with 1 vs 2 threads and with
torch.backends.mkldnn.enabled = False); ATEN_CPU_CAPABILITY=default (the non-AVX2 kernels, a
stand-in for another CPU's rounding) does change them: a2c on Pendulum, seed 0, went from -183.5
to -227.0, inside the new threshold.

Pendulum-v1 (20 episodes; a random policy scores about -1200 to -1500)::

    seed      ppo (301,056 steps)       a2c (2,000,128 steps)
    0         -174.1 ± 114.0  103 s     -183.5 ± 136.6  109 s
    1         -168.6 ± 103.1   76 s     -194.5 ± 129.4  112 s
    2         -186.5 ± 129.3   88 s     -275.0 ± 314.4  167 s
    3         -245.1 ± 308.9  100 s     -210.4 ± 152.2  248 s
    4         -236.6 ± 306.1  102 s     -251.8 ± 307.8  252 s

Re-swept 2026-12-02 with the fast path (pgrl.fast: PPO's update in kernels, and the native
CartPole's rollouts for ppo, a2c and actor_critic; the same seeds and evaluations; quiet machine)::

    seed   actor_critic          a2c            ppo (CartPole)        ppo (Pendulum)
    0      500.0 ± 0.0   23 s    500.0   17 s   500.0 ± 0.0    6 s   -187.6 ± 129.2  34 s
    1      500.0 ± 0.0   23 s    245.7   15 s   500.0 ± 0.0    6 s   -171.5 ± 106.8  34 s
    2      500.0 ± 0.0   24 s    500.0   13 s   500.0 ± 0.0    5 s   -169.1 ± 105.8  33 s
    3      500.0 ± 0.0   21 s    500.0   14 s   500.0 ± 0.0    5 s   -187.7 ± 132.1  36 s
    4      298.6 ± 13.3  23 s    500.0   13 s   434.6 ± 35.2   6 s   -232.3 ± 304.3  33 s

The paths agree to float32 rounding step by step (tests/unit/test_fast_path.py), but over 1e5
steps those differences grow as any two machines' do, so which seed misses moved: actor_critic,
a2c and ppo now miss 1 of 5 each, which the 1-of-4 rule above absorbs; every seed 0 solves, and
Pendulum stays far inside -500.

A 20-episode Pendulum mean is bimodal per episode: a swung-up episode scores about -150, one that
fails to swing up about -1000, so each failed episode moves the mean by about 40.  That is why
seed 0 of a2c reached -183.5 here and -313.7 on an Intel Xeon (AVX-512): the old thresholds (-200
for ppo, -250 for a2c) sat inside the seed-to-seed spread (ppo failed seeds 3 and 4 at -200, a2c
seeds 2 and 4 at -250).  The threshold is now -500 for both: the worst seed seen (-275, or -314 on
the Xeon) minus about 200 (five more failed swing-ups out of 20), and still 700 above a random
policy, so the test fails when learning breaks.
"""

from __future__ import annotations

import pytest

import pgrl

SEED = 0  # Pendulum-v1
CARTPOLE_SEEDS = (0, 1, 2, 3)
CARTPOLE_THRESHOLD = 475.0
PENDULUM_THRESHOLD = -500.0


@pytest.mark.learning
@pytest.mark.parametrize("algo", ["reinforce", "vpg", "actor_critic", "a2c", "ppo"])
def test_solves_cartpole(algo):
    """At least 1 of CARTPOLE_SEEDS solves CartPole-v1 (seeds tried in turn; see the module docstring)."""
    attempts = []
    for seed in CARTPOLE_SEEDS:
        model = pgrl.ALGORITHMS[algo]("MlpPolicy", "CartPole-v1", seed=seed, device="cpu")
        model.learn()
        mean, std = pgrl.evaluate_policy(model, "CartPole-v1", n_eval_episodes=100, backend="gymnasium")
        attempts.append(f"seed {seed}: {mean:.1f} ± {std:.1f} after {model.num_timesteps} steps")
        if mean >= CARTPOLE_THRESHOLD:
            return
    pytest.fail(f"{algo} reached {CARTPOLE_THRESHOLD} on none of seeds {CARTPOLE_SEEDS}: " + "; ".join(attempts))


@pytest.mark.learning
@pytest.mark.parametrize("algo", ["ppo", "a2c"])
def test_solves_pendulum(algo):
    model = pgrl.ALGORITHMS[algo]("MlpPolicy", "Pendulum-v1", seed=SEED, device="cpu")
    model.learn()
    mean, std = pgrl.evaluate_policy(model, "Pendulum-v1", n_eval_episodes=20, backend="gymnasium")
    assert mean >= PENDULUM_THRESHOLD, f"{algo} reached {mean:.1f} ± {std:.1f} after {model.num_timesteps} steps"
