"""The studies on CartPole-v1 with small, fixed-seed settings, and their CLI end to end."""

from __future__ import annotations

import argparse
import csv
import math

import pytest
import torch

from pgrl.errors import ConfigError
from pgrl.studies.cli import add_study_parser, run_study
from pgrl.studies.common import train_fixed_policy
from pgrl.studies.gae_lambda import lambda_statistics, measure_gae_lambda
from pgrl.studies.grad_variance import grad_variance_study, measure_grad_variance


@pytest.fixture(scope="module")
def cartpole_policy():
    return train_fixed_policy("CartPole-v1", "a2c", 10_000, seed=0)


@pytest.fixture(scope="module")
def gae_measurement(cartpole_policy):
    return measure_gae_lambda(cartpole_policy, [0.0, 0.5, 1.0], n_states=16, n_rollouts=16, n_ref=64, seed=0)


def test_baseline_cuts_gradient_variance_against_whole_episode_reinforce(cartpole_policy):
    m = measure_grad_variance(cartpole_policy, batches=12, batch_episodes=6, ref_episodes=200, fit_episodes=60, seed=0)
    variance = {name: s["total_variance"] for name, s in m.stats.items()}
    # Theory that holds for any critic fitted on other episodes: dropping past rewards and then
    # subtracting a state baseline remove variance; on CartPole (all rewards +1) by large factors.
    assert variance["reinforce_episode"] > 3 * variance["vpg_baseline"]
    assert variance["reinforce_rtg"] > variance["vpg_baseline"]
    assert m.grads.shape[:2] == (12, 5)
    assert m.batch_sizes == [6] * 12
    assert all(-1.0 <= s["cosine_mean"] <= 1.0 for s in m.stats.values())


def test_gae_lambda1_estimate_is_monte_carlo_return_minus_critic(gae_measurement):
    m = gae_measurement
    assert m.mean_length < m.horizon  # nothing reached the horizon: no bootstrap anywhere
    # exact identity per start pair: GAE(1) telescopes to G - V_phi(s)
    assert torch.allclose(m.adv_mean[2], m.mc_mean - m.v_critic, atol=1e-3 * (1 + m.mc_mean.abs().max()))


def test_gae_lambda1_bias_is_the_critic_error(gae_measurement):
    m = gae_measurement
    bias1 = m.adv_mean[2] - m.a_ref
    critic_error = m.v_ref - m.v_critic
    # bias1 - critic_error = mean of the K estimator returns - mean of the n_ref Q-reference
    # returns: zero in expectation; 4 standard errors of its mean over start pairs.
    difference = bias1 - critic_error
    se = math.sqrt(float((m.q_var / m.n_rollouts + m.q_var / m.n_ref).sum())) / difference.shape[0]
    assert abs(float(difference.mean())) < 4 * se + 1e-6
    # the lambda = 1 bias depends on s alone: its action-dependent part is noise
    stats = lambda_statistics(m, 2)
    assert abs(stats["action_bias_sq"]) < 4 * stats["action_bias_sq_se"] + 1e-6


def test_reference_advantage_averages_to_zero_over_pis_actions(gae_measurement):
    m = gae_measurement
    # a ~ pi(.|s) at each start state, so E[A^pi(s, a)] = 0; tolerance 4 standard errors
    a_ref = m.a_ref
    assert abs(float(a_ref.mean())) < 4 * float(a_ref.std()) / math.sqrt(a_ref.shape[0]) + 0.05


def test_td0_has_no_variance_on_deterministic_cartpole_and_variance_grows_with_lambda(gae_measurement):
    m = gae_measurement
    variance = [lambda_statistics(m, i)["variance"] for i in range(3)]
    assert variance[0] < 1e-8  # s, a fixed and the dynamics deterministic: delta_0 is a constant
    assert variance[0] < variance[1] < variance[2]


def study_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="pgrl")
    add_study_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(list(argv))


def test_cli_grad_variance_end_to_end(tmp_path, capsys):
    out = tmp_path / "gv"
    args = study_args("study", "grad-variance", "CartPole-v1", "--train-steps", "1000", "--batches", "3",
                      "--batch-steps", "200", "--ref-episodes", "20", "--fit-episodes", "10", "-o", str(out))
    assert run_study(args) == 0
    for name in ("grad_variance.png", "grad_variance.csv", "report.html"):
        assert (out / name).stat().st_size > 0
    with (out / "grad_variance.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["estimator"] for r in rows] == ["reinforce_episode", "reinforce_rtg", "vpg_baseline", "td0", "gae"]
    assert all(float(r["total_variance"]) >= 0 for r in rows)
    html = (out / "report.html").read_text()
    assert "data:image/png;base64" in html and "total_variance" in html
    assert "wrote" in capsys.readouterr().out
    with pytest.raises(ConfigError, match="already exists and is not empty"):
        run_study(args)


def test_cli_gae_lambda_end_to_end(tmp_path):
    out = tmp_path / "gae"
    args = study_args("study", "gae-lambda", "CartPole-v1", "--lambdas", "0,0.95,1", "--train-steps", "1000",
                      "--states", "3", "--rollouts", "3", "--ref-rollouts", "4", "-o", str(out))
    assert run_study(args) == 0
    for name in ("gae_lambda.png", "gae_lambda.csv", "report.html"):
        assert (out / name).stat().st_size > 0
    with (out / "gae_lambda.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [float(r["lambda"]) for r in rows] == [0.0, 0.95, 1.0]


def test_grad_variance_from_a_run_folder(tmp_path):
    from pgrl.runs import train_run

    run_dir, _, _ = train_run("ppo", "CartPole-v1", total_timesteps=512, out=tmp_path / "run",
                              progress_bar=False, eval_episodes=0)
    result = grad_variance_study("CartPole-v1", tmp_path / "gv", run_dir=run_dir, batches=2, batch_episodes=2,
                                 ref_episodes=8, fit_episodes=8)
    assert "model of" in result.text and result.figures[0].exists()
    assert result.table[0][0] == "estimator" and len(result.table[1]) == 5
    with pytest.raises(ConfigError, match="was trained on CartPole-v1, not Acrobot-v1"):
        grad_variance_study("Acrobot-v1", tmp_path / "gv2", run_dir=run_dir, batches=2, batch_episodes=2)
