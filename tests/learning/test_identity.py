"""SB3's identity tasks, for each action space, with PPO and A2C: reach SB3's threshold.

The observation is the target and the reward is 1 when the action equals it (within eps for the
Box task); 100-step episodes, so a greedy 20-episode mean above 90 (SB3's
``reward_threshold=90`` in its tests/test_identity.py) means over 90% of actions right.  SB3's
settings: one env, seed 1 in SB3 (0 here), gamma 0.4 for the discrete tasks, gamma 0.95 and
net_arch [64, 64] for the Box task (eps 0.5), 3000 steps (A2C Box: 3500).

Seed sweep, greedy 20-episode means, seeds 0-4, AMD EPYC, torch 2.13.0, 2026-12-01:

| algo | task          | steps | pgrl                              | SB3 2.9.2, same settings         |
|------|---------------|-------|-----------------------------------|----------------------------------|
| PPO  | Discrete      | 3000  | 100 100 100 100 100               |                                  |
| PPO  | MultiDiscrete | 3000  | 100 100 100 100 100               |                                  |
| PPO  | MultiBinary   | 3000  | 100 100 100 100 100               |                                  |
| PPO  | Box           | 3000  | 100 100 100 100 100               |                                  |
| A2C  | Discrete      | 3000  | 100 100 100 100 100               |                                  |
| A2C  | MultiDiscrete | 3000  | 100 100 100 100 100               |                                  |
| A2C  | MultiBinary   | 3000  | 88.3 86.7 87.7 86.7 100           | 87.6 94.8 93.6 94.6 93.8         |
| A2C  | MultiBinary   | 6000  | 100 100 100 93.3 100 (seeds 5-7: 100 100 100) |                      |
| A2C  | Box           | 3500  | 94.2 77.2 98.2 79.1 87.2          | 84.8 87.5 74.0 99.6 71.6         |
| A2C  | Box           | 7000  | 100 100 89.0 100 95.8 (seeds 5-7: 100 100 99.7) |                  |
| A2C  | Box           | 10500 | 100 100 100 100 100 (seeds 5-7: 100 100 100) |                     |

At SB3's own budget A2C's MultiBinary and Box tasks are not robust in SB3 either (one to four
seeds of five miss), so these two run with the budgets of the rows above, where every seed
swept passes with margin.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import pgrl
from pgrl.envs.identity import IdentityEnv, IdentityEnvBox, IdentityEnvMultiBinary, IdentityEnvMultiDiscrete

pytestmark = pytest.mark.learning

DISCRETE_TASKS = {
    "discrete": lambda: IdentityEnv(4),
    "multidiscrete": lambda: IdentityEnvMultiDiscrete(4),
    "multibinary": lambda: IdentityEnvMultiBinary(4),
}
STEPS = {("a2c", "multibinary"): 6000, ("a2c", "box"): 10500, ("ppo", "box"): 3000}


@pytest.mark.parametrize("task", [*DISCRETE_TASKS, "box"])
@pytest.mark.parametrize("algo", ["ppo", "a2c"])
def test_identity_task_reaches_sb3_threshold(algo, task):
    torch.set_num_threads(1)
    cls = pgrl.Algorithm.registry[algo]
    if task == "box":
        env = IdentityEnvBox(eps=0.5)
        model = cls("MlpPolicy", env, gamma=0.95, seed=0, policy_kwargs={"net_arch": [64, 64]})
    else:
        env = DISCRETE_TASKS[task]()
        model = cls("MlpPolicy", env, gamma=0.4, seed=0)
    model.learn(STEPS.get((algo, task), 3000))
    mean, _ = pgrl.evaluate_policy(model, env, n_eval_episodes=20, reward_threshold=90)
    obs, _ = env.reset(seed=0)
    assert np.shape(model.predict(obs)[0]) == np.shape(env.action_space.sample())
    assert mean > 90
