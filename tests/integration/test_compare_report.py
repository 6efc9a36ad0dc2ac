"""pgrl compare / pgrl report: grid expansion, grouping, results.csv, scheduling, errors."""

import csv
import json
import sys
import types
from pathlib import Path

import pytest

from pgrl.cli import main
from pgrl.compare import compare, expand_grid, make_jobs, parse_axes, run_single, split_values
from pgrl.errors import ConfigError, PGRLError
from pgrl.report import build_report, group_runs, load_runs


def fake_run(path: Path, algo="a2c", seed=0, env_id="CartPole-v1", config=None, returns=(10, 200, 480, 500),
             eval_return: float | None = 490.0) -> Path:
    """A run folder written by hand: config.json, metrics.csv (4 rows) and summary.json."""
    path.mkdir(parents=True)
    cfg = {"n_envs": 8, "gamma": 0.99, "policy_kwargs": {"net_arch": [64, 64]}, **(config or {})}
    (path / "config.json").write_text(json.dumps({"algo": algo, "env_id": env_id, "seed": seed, "config": cfg,
                                                  "preset": "default"}))
    with (path / "metrics.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["step", "loss/entropy", "loss/value", "rollout/ep_return_mean", "time/elapsed"])
        for i, ret in enumerate(returns):
            writer.writerow([(i + 1) * 1000, -0.6, 1.0, ret, (i + 1) * 2.0])
    summary = {"algo": algo, "env_id": env_id, "seed": seed}
    if eval_return is not None:
        summary["eval_return_mean"] = eval_return
    (path / "summary.json").write_text(json.dumps(summary))
    return path


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


# -- grid ------------------------------------------------------------------------------------------


def test_split_values_keeps_brackets():
    assert split_values("0.9, 0.95") == ["0.9", "0.95"]
    assert split_values("[64,64],[32]") == ["[64,64]", "[32]"]


def test_parse_axes_and_errors():
    assert parse_axes(["gae_lambda=0.9,0.95", "n_steps=5"]) == [("gae_lambda", ["0.9", "0.95"]), ("n_steps", ["5"])]
    for bad in ["gae_lambda", "=0.9", "gae_lambda=0.9,", "gae_lambda="]:
        with pytest.raises(ConfigError, match="key=value1,value2"):
            parse_axes([bad])
    with pytest.raises(ConfigError, match="given twice"):
        parse_axes(["n_steps=5", "n_steps=8"])


def test_expand_grid_product_and_applicable_axes():
    groups = expand_grid(["reinforce", "a2c"], parse_axes(["gae_lambda=0.9,0.95", "n_steps=8,16"]))
    names = [g.name for g in groups]
    assert names[0] == "reinforce"  # reinforce has neither key: one group
    assert names[1:] == ["a2c-gae_lambda=0.9-n_steps=8", "a2c-gae_lambda=0.9-n_steps=16",
                         "a2c-gae_lambda=0.95-n_steps=8", "a2c-gae_lambda=0.95-n_steps=16"]
    assert groups[2].overrides == ("gae_lambda=0.9", "n_steps=16")
    assert [g.name for g in expand_grid(["ppo"], parse_axes(["policy_kwargs.net_arch=[64,64],[32]"]))] == [
        "ppo-policy_kwargs.net_arch=-64-64", "ppo-policy_kwargs.net_arch=-32"]
    with pytest.raises(ConfigError, match="not a hyperparameter of reinforce"):
        expand_grid(["reinforce"], parse_axes(["gae_lambda=0.9"]))
    with pytest.raises(ConfigError, match="unknown algorithm 'sac'"):
        expand_grid(["sac"], [])


def test_jobs_a3c_alone_and_batched_routing(tmp_path, monkeypatch):
    groups = expand_grid(["a2c", "a3c"], [])
    # the real pgrl.batched: a2c seeds train one by one
    jobs = make_jobs(groups, "CartPole-v1", 2, tmp_path, total_timesteps=100, stop_seconds=None,
                     preset="default", eval_episodes=0, no_batch=False)
    assert [(j["kind"], j["group"], j["seed"]) for j in jobs] == [
        ("pool", "a2c", 0), ("pool", "a2c", 1), ("alone", "a3c", 0), ("alone", "a3c", 1)]
    assert jobs[1]["out_dir"] == str(tmp_path / "runs" / "a2c" / "s1")

    fake = types.ModuleType("pgrl.batched")
    fake.batched_unsupported = lambda algo, env_id, hparams, env_backend="auto", preset="default": (
        None if algo == "a2c" else "no")
    monkeypatch.setitem(sys.modules, "pgrl.batched", fake)
    kwargs = dict(total_timesteps=100, stop_seconds=None, preset="default", eval_episodes=0)
    jobs = make_jobs(groups, "CartPole-v1", 3, tmp_path, no_batch=False, **kwargs)
    assert [(j["kind"], j["seeds"]) for j in jobs] == [
        ("batched", [0, 1, 2]), ("alone", [0]), ("alone", [1]), ("alone", [2])]
    assert jobs[0]["out_dirs"][2] == str(tmp_path / "runs" / "a2c" / "s2")
    assert {j["kind"] for j in make_jobs(groups[:1], "CartPole-v1", 3, tmp_path, no_batch=True, **kwargs)} == {"pool"}
    assert {j["kind"] for j in make_jobs(groups[:1], "CartPole-v1", 1, tmp_path, no_batch=False, **kwargs)} == {"pool"}


def test_time_budget_stops_a_run(tmp_path):
    job = {"algo": "a2c", "env_id": "CartPole-v1", "seed": 0, "total_timesteps": 200_000, "overrides": [],
           "out_dir": str(tmp_path / "run"), "preset": "default", "eval_episodes": 0, "stop_seconds": 0.3,
           "group": "a2c", "kind": "pool", "seeds": [0]}
    done = run_single(job)
    assert done["ok"], done.get("trace")
    assert 0 < done["summaries"][0]["num_timesteps"] < 200_000
    assert done["summaries"][0]["train_seconds"] < 5


# -- report ----------------------------------------------------------------------------------------


def test_grouping_labels_name_the_differing_hyperparameters(tmp_path):
    dirs = [fake_run(tmp_path / f"a{lam}-{s}", seed=s, config={"gae_lambda": lam}) for lam in (0.9, 0.95)
            for s in (0, 1)]
    dirs.append(fake_run(tmp_path / "ppo", algo="ppo", config={"gae_lambda": 0.95}))
    groups = group_runs(load_runs(dirs))
    assert list(groups) == ["a2c gae_lambda=0.9", "a2c gae_lambda=0.95", "ppo"]
    assert [r.seed for r in groups["a2c gae_lambda=0.95"]] == [0, 1]
    nested = [fake_run(tmp_path / "n1", config={"policy_kwargs": {"net_arch": [32]}}),
              fake_run(tmp_path / "n2", config={"policy_kwargs": {"net_arch": [64, 64]}})]
    assert list(group_runs(load_runs(nested))) == ["a2c policy_kwargs.net_arch=[32]",
                                                   "a2c policy_kwargs.net_arch=[64,64]"]


def test_results_csv_by_hand(tmp_path):
    dirs = [
        fake_run(tmp_path / "s0", seed=0, returns=(10, 200, 480, 500), eval_return=500.0),  # 475 at step 3000
        fake_run(tmp_path / "s1", seed=1, returns=(10, 476, 490, 500), eval_return=400.0),  # at step 2000
        fake_run(tmp_path / "s2", seed=2, returns=(10, 20, 30, 40), eval_return=None),  # never; final = 40
        fake_run(tmp_path / "p0", algo="ppo", returns=(float("nan"), 100, 100, 100), eval_return=None),
    ]
    build_report(dirs, tmp_path / "out", command="test")
    rows = read_csv(tmp_path / "out" / "results.csv")
    assert [r["group"] for r in rows] == ["a2c", "ppo"]
    a2c, ppo = rows
    assert a2c["seeds"] == "3"
    assert float(a2c["final_return_mean"]) == pytest.approx((500 + 400 + 40) / 3)
    assert float(a2c["final_return_iqm"]) == pytest.approx((400 * 1 + 40 * 0.25 + 500 * 0.25) / 1.5)
    assert float(a2c["median_steps_to_threshold"]) == 2500.0  # median of 3000 and 2000
    assert float(a2c["median_seconds_to_threshold"]) == 5.0  # median of 6 s and 4 s
    assert float(a2c["solve_rate"]) == pytest.approx(2 / 3, abs=1e-4)
    assert ppo["final_return_mean"] == "100.0" and ppo["median_steps_to_threshold"] == ""
    assert ppo["iqm_ci95_low"] == ppo["iqm_ci95_high"] == "100.0"
    html = (tmp_path / "out" / "report.html").read_text()
    assert "greedy evaluation return (summary.json eval_return_mean) for 2 run(s)" in html
    assert "last training return (rollout/ep_return_mean) for 2" in html
    assert html.count("data:image/png;base64,") == 2  # returns.png and diagnostics.png
    assert "2/3" in html and "median steps to 475" in html

    build_report(dirs, tmp_path / "out2", threshold=100)
    a2c, ppo = read_csv(tmp_path / "out2" / "results.csv")
    assert float(a2c["median_steps_to_threshold"]) == 2000.0 and float(ppo["solve_rate"]) == 1.0
    assert float(ppo["median_steps_to_threshold"]) == 2000.0


def test_no_threshold_blank_columns(tmp_path):
    runs = [fake_run(tmp_path / "r", env_id="NoSuchEnv-v0")]
    build_report(runs, tmp_path / "out")
    (row,) = read_csv(tmp_path / "out" / "results.csv")
    assert row["median_steps_to_threshold"] == row["solve_rate"] == ""
    assert "pass --threshold" in (tmp_path / "out" / "report.html").read_text()


def test_report_errors(tmp_path):
    with pytest.raises(PGRLError, match="does not exist"):
        load_runs([tmp_path / "missing"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(PGRLError, match="not a run folder"):
        load_runs([tmp_path / "empty"])
    a = fake_run(tmp_path / "a")
    b = fake_run(tmp_path / "b", env_id="Pendulum-v1")
    with pytest.raises(PGRLError, match="different environments"):
        load_runs([a, b])


def test_cli_report_and_errors(tmp_path, capsys):
    run = fake_run(tmp_path / "r")
    assert main(["report", str(run), "-o", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "report.html").exists()
    assert main(["report", str(tmp_path / "nope"), "-o", str(tmp_path / "o2")]) == 2
    assert "does not exist" in capsys.readouterr().err
    base = ["compare", "--env", "CartPole-v1", "-o", str(tmp_path / "c")]
    cases = [
        (["--algos", "a2c,sac"], "unknown algorithm 'sac'"),
        (["--algos", "a2c", "--seeds", "0"], "--seeds must be at least 1"),
        (["--algos", "a2c", "--total-timesteps", "100", "--time-budget", "5"], "not both"),
        (["--algos", "a2c", "--set", "gae_lambda"], "--set expects key=value1,value2"),
        (["--algos", "a2c", "--set", "gamma=[oops"], "--set gamma"),
        (["--algos", "a2c", "--workers", "0"], "--workers must be at least 1"),
    ]
    for extra, message in cases:
        assert main(base + extra) == 2, extra
        err = capsys.readouterr().err
        assert err.startswith("pgrl: error: ") and message in err, (extra, err)
    assert main(["compare", "--algos", "a2c", "--env", "CartPole-v1", "-o", str(tmp_path)]) == 2
    assert "not empty" in capsys.readouterr().err


def test_compare_end_to_end_with_a_failing_setting(tmp_path, capsys):
    # n_steps=0 is invalid: those runs fail, are reported, and the others still make the report.
    result = compare(["a2c"], "CartPole-v1", 1, tmp_path / "out", total_timesteps=400, sets=["n_steps=5,0"],
                     workers=1, eval_episodes=2, progress=False, command="pgrl compare (test)")
    assert result.report == tmp_path / "out" / "report.html"
    assert [p.name for p in result.run_dirs] == ["s0"]
    assert len(result.failures) == 1 and result.failures[0].startswith("a2c-n_steps=0 s0: ")
    (row,) = read_csv(tmp_path / "out" / "results.csv")
    assert row["group"] == "a2c" and row["seeds"] == "1"
    html = result.report.read_text()
    assert "Failed runs" in html and "a2c-n_steps=0 s0" in html and "pgrl compare (test)" in html
    out = capsys.readouterr().out
    assert "done a2c-n_steps=5 s0: greedy return" in out and "FAILED a2c-n_steps=0 s0" in out


def test_gae_lambda_study_section(tmp_path, monkeypatch, capsys):
    from pgrl.compare import gae_lambda_section

    calls = []
    figure = tmp_path / "study.png"
    figure.write_bytes(b"\x89PNG\r\n")

    def fake_study(env_id, lambdas, out_dir, algo="a2c", seed=0):
        calls.append((env_id, lambdas, Path(out_dir).name, algo, seed))
        return types.SimpleNamespace(figures=[figure], table=(["lambda"], [[0.9]]), text="bias vs variance")

    package, module = types.ModuleType("pgrl.studies"), types.ModuleType("pgrl.studies.gae_lambda")
    module.gae_lambda_study = fake_study
    monkeypatch.setitem(sys.modules, "pgrl.studies", package)
    monkeypatch.setitem(sys.modules, "pgrl.studies.gae_lambda", module)
    axes = parse_axes(["n_steps=5", "gae_lambda=0.9,1"])
    (section,) = gae_lambda_section(axes, ["reinforce", "ppo"], "CartPole-v1", tmp_path)
    assert calls == [("CartPole-v1", [0.9, 1.0], "gae_lambda_study", "ppo", 0)]
    assert section.images == [figure] and section.tables == [(["lambda"], [[0.9]])]
    assert gae_lambda_section(parse_axes(["n_steps=5"]), ["ppo"], "CartPole-v1", tmp_path) == []

    monkeypatch.setitem(sys.modules, "pgrl.studies.gae_lambda", None)  # not available
    assert gae_lambda_section(axes, ["ppo"], "CartPole-v1", tmp_path) == []
    assert "not available" in capsys.readouterr().out
