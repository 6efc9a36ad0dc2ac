"""`pgrl compare`: train a grid of (algorithm, setting, seed) runs, then write one report.

The grid: every algorithm of ``--algos`` times the cartesian product of the ``--set key=v1,v2``
axes, times ``--seeds K`` seeds (0..K-1).  An axis applies to the algorithms whose config has that
key (``--set gae_lambda=0.9,0.95`` with reinforce and a2c varies a2c only); a key no algorithm has
is an error.  Runs go to OUT/runs/<group>/s<seed>/ as ordinary run folders, then OUT/report.html,
OUT/results.csv and the figures are written (pgrl.report.build_report).

Scheduling on a CPU: W worker processes (spawn, one torch thread each) run the jobs; the seeds of
a group train in one process with batched parameters when pgrl.batched supports that config
(``--no-batch`` turns this off); A3C runs start their own worker processes, so they run after the
pool, one at a time.  With ``--time-budget S`` each run stops after S training seconds; the
learning-rate schedules still follow the step budget (the preset's or ``--total-timesteps``), so a
run stopped by the clock ends before its schedule does.  A failed run is reported and the others
go on; the report lists the failures.
"""

from __future__ import annotations

import itertools
import multiprocessing
import re
import shlex
import sys
import time
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pgrl.config import parse_overrides
from pgrl.errors import ConfigError, PGRLError, TrainingError


@dataclass(frozen=True)
class Group:
    """One (algorithm, setting): its overrides ("key=value" strings) and its folder name."""

    algo: str
    overrides: tuple[str, ...]
    name: str


@dataclass
class CompareResult:
    out: Path
    report: Path | None
    run_dirs: list[Path] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


def split_values(text: str) -> list[str]:
    """'0.9,0.95' -> ['0.9', '0.95']; commas inside [] or {} stay ('[64,64],[32]' -> two values)."""
    values, depth, current = [], 0, ""
    for char in text:
        depth += char in "[{("
        depth -= char in "]})"
        if char == "," and depth == 0:
            values.append(current.strip())
            current = ""
        else:
            current += char
    values.append(current.strip())
    return values


def parse_axes(sets: list[str]) -> list[tuple[str, list[str]]]:
    """['gae_lambda=0.9,0.95', 'n_steps=5'] -> [('gae_lambda', ['0.9', '0.95']), ('n_steps', ['5'])]."""
    axes: list[tuple[str, list[str]]] = []
    for item in sets:
        key, sep, raw = item.partition("=")
        key = key.strip()
        values = split_values(raw)
        if not sep or not key or any(v == "" for v in values):
            raise ConfigError(f"--set expects key=value1,value2,... (e.g. --set gae_lambda=0.9,0.95), got '{item}'")
        if key in (k for k, _ in axes):
            raise ConfigError(f"--set {key} is given twice; list all its values in one --set {key}=v1,v2")
        for value in values:
            parse_overrides([f"{key}={value}"])  # the same parsing (and errors) as pgrl train --set
        axes.append((key, values))
    return axes


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=+-]+", "-", text).strip("-")


def expand_grid(algos: list[str], axes: list[tuple[str, list[str]]]) -> list[Group]:
    """Every (algorithm, setting): the product of the axes whose key the algorithm's config has."""
    from pgrl.runs import algorithm_class

    classes = {algo: algorithm_class(algo) for algo in algos}
    for key, _ in axes:
        top = key.split(".")[0]
        if not any(top in cls.config_class.model_fields for cls in classes.values()):
            raise ConfigError(f"--set {key} is not a hyperparameter of {', '.join(algos)}; check the key name")
    groups: list[Group] = []
    for cls in classes.values():
        mine = [(k, vs) for k, vs in axes if k.split(".")[0] in cls.config_class.model_fields]
        for combo in itertools.product(*[[f"{k}={v}" for v in vs] for k, vs in mine]):
            name = _safe("-".join([cls.name, *combo]))
            groups.append(Group(cls.name, tuple(combo), name))
    return groups


# -- running --------------------------------------------------------------------------------------


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)


def _error_line(exc: BaseException) -> str:
    if isinstance(exc, PGRLError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}".strip().splitlines()[0]


def run_single(job: dict[str, Any]) -> dict[str, Any]:
    """Train one (algorithm, setting, seed) into job['out_dir']; never raises (the error is returned)."""
    from pgrl.runs import train_run

    started = time.perf_counter()
    stop = job.get("stop_seconds")
    callback = (lambda algo, row: row.get("time/elapsed", 0.0) < stop) if stop else None
    try:
        _, _, summary = train_run(
            job["algo"], job["env_id"], seed=job["seed"], total_timesteps=job["total_timesteps"],
            overrides=list(job["overrides"]), out=job["out_dir"], preset=job["preset"], progress_bar=False,
            eval_episodes=job["eval_episodes"], callback=callback,
        )
        return {**job, "ok": True, "summaries": [summary], "wall": time.perf_counter() - started}
    except Exception as exc:  # one failed run must not stop the others
        return {**job, "ok": False, "error": _error_line(exc), "trace": traceback.format_exc(),
                "wall": time.perf_counter() - started}


def run_batched(job: dict[str, Any]) -> dict[str, Any]:
    """Train all seeds of a group in one process with pgrl.batched; never raises."""
    started = time.perf_counter()
    try:
        from pgrl.batched import train_batched

        summaries = train_batched(
            job["algo"], job["env_id"], list(job["seeds"]), [Path(d) for d in job["out_dirs"]],
            total_timesteps=job["total_timesteps"], hparams=parse_overrides(list(job["overrides"])),
            preset=job["preset"], eval_episodes=job["eval_episodes"], stop_seconds=job.get("stop_seconds"),
        )
        return {**job, "ok": True, "summaries": summaries, "wall": time.perf_counter() - started}
    except Exception as exc:
        return {**job, "ok": False, "error": _error_line(exc), "trace": traceback.format_exc(),
                "wall": time.perf_counter() - started}


def batch_reason(group: Group, env_id: str, preset: str, seeds: int, no_batch: bool) -> str | None:
    """None when the group's seeds can train batched in one process, else why not."""
    if no_batch:
        return "--no-batch"
    if seeds < 2:
        return "one seed"
    from pgrl.batched import batched_unsupported

    hparams = parse_overrides(list(group.overrides))
    try:
        return batched_unsupported(group.algo, env_id, hparams, "auto", preset=preset)
    except Exception as exc:  # a broken check must not stop the comparison: train seed by seed
        return f"batched check failed ({_error_line(exc)})"


def make_jobs(groups: list[Group], env_id: str, seeds: int, out: Path, *, total_timesteps: int | None,
              stop_seconds: float | None, preset: str, eval_episodes: int, no_batch: bool) -> list[dict[str, Any]]:
    """One job per run, or one per group when its seeds train batched (job['kind'] says which)."""
    from pgrl.runs import algorithm_class

    jobs = []
    common = {"env_id": env_id, "total_timesteps": total_timesteps, "stop_seconds": stop_seconds,
              "preset": preset, "eval_episodes": eval_episodes}
    for group in groups:
        dirs = [str(out / "runs" / group.name / f"s{seed}") for seed in range(seeds)]
        base = {**common, "algo": group.algo, "group": group.name, "overrides": list(group.overrides)}
        # an algorithm with worker processes of its own (hogwild) runs alone, not in the pool
        alone = algorithm_class(group.algo).capabilities.runner != "synchronous"
        if not alone and batch_reason(group, env_id, preset, seeds, no_batch) is None:
            jobs.append({**base, "kind": "batched", "seeds": list(range(seeds)), "out_dirs": dirs})
            continue
        for seed, out_dir in enumerate(dirs):
            kind = "alone" if alone else "pool"
            jobs.append({**base, "kind": kind, "seed": seed, "seeds": [seed], "out_dir": out_dir})
    return jobs


def execute(jobs: list[dict[str, Any]], workers: int, on_done) -> None:
    """Pool jobs (single and batched) on ``workers`` spawn processes, then the A3C jobs one at a time here."""
    pooled = [j for j in jobs if j["kind"] != "alone"]
    if workers == 1:
        for job in pooled:
            on_done(run_batched(job) if job["kind"] == "batched" else run_single(job))
    elif pooled:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_init_worker) as pool:
            futures = {pool.submit(run_batched if j["kind"] == "batched" else run_single, j): j for j in pooled}
            for future in as_completed(futures):
                try:
                    done = future.result()
                except Exception as exc:  # the worker process died (killed, out of memory)
                    done = {**futures[future], "ok": False, "error": f"worker process failed: {_error_line(exc)}",
                            "wall": 0.0}
                on_done(done)
    for job in jobs:
        if job["kind"] == "alone":
            on_done(run_single(job))


def compare(
    algos: list[str],
    env_id: str,
    seeds: int,
    out: str | Path | None = None,
    *,
    total_timesteps: int | None = None,
    time_budget: float | None = None,
    sets: list[str] | None = None,
    preset: str = "default",
    workers: int = 2,
    threshold: float | None = None,
    eval_episodes: int = 20,
    no_batch: bool = False,
    command: str | None = None,
    progress: bool = True,
    clips: bool = False,
) -> CompareResult:
    """Run the grid and write the report; see the module docstring.  With ``clips`` the report
    shows one short greedy episode per group (a GIF of its first seed, pgrl.record)."""
    from tqdm import tqdm

    if not algos:
        raise ConfigError("--algos is empty; give a comma-separated list such as --algos a2c,ppo")
    if seeds < 1:
        raise ConfigError(f"--seeds must be at least 1, got {seeds}")
    if workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}")
    if total_timesteps is not None and time_budget is not None:
        raise ConfigError("give either --total-timesteps or --time-budget, not both")
    if total_timesteps is not None and total_timesteps <= 0:
        raise ConfigError(f"--total-timesteps must be positive, got {total_timesteps}")
    if time_budget is not None and time_budget <= 0:
        raise ConfigError(f"--time-budget must be a positive number of seconds, got {time_budget}")
    if len(set(algos)) != len(algos):
        raise ConfigError(f"--algos lists an algorithm twice ({','.join(algos)}); give each once")
    axes = parse_axes(sets or [])
    groups = expand_grid(algos, axes)
    out = Path(out) if out is not None else Path("runs") / f"compare-{env_id}-{time.strftime('%Y%m%d-%H%M%S')}"
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"output folder {out} already exists and is not empty; choose another -o")
    out.mkdir(parents=True, exist_ok=True)
    jobs = make_jobs(groups, env_id, seeds, out, total_timesteps=total_timesteps, stop_seconds=time_budget,
                     preset=preset, eval_episodes=eval_episodes, no_batch=no_batch)
    result = CompareResult(out, None)
    total_runs = sum(len(j["seeds"]) for j in jobs)
    batched = sum(j["kind"] == "batched" for j in jobs)
    print(f"pgrl compare: {len(groups)} group(s) x {seeds} seed(s) = {total_runs} run(s) on {env_id}, "
          f"{workers} worker(s)" + (f", {batched} group(s) batched" if batched else ""), flush=True)
    bar = tqdm(total=total_runs, unit="run", dynamic_ncols=True, disable=not progress, file=sys.stdout)

    def on_done(done: dict[str, Any]) -> None:
        names = [f"{done['group']} s{seed}" for seed in done["seeds"]]
        if done["ok"]:
            dirs = done["out_dirs"] if done["kind"] == "batched" else [done["out_dir"]]
            result.run_dirs.extend(Path(d) for d in dirs)
            for name, summary in zip(names, done["summaries"], strict=False):
                ret = summary.get("eval_return_mean")
                shown = f"greedy return {ret:.1f}" if ret is not None else "no evaluation"
                bar.write(f"  done {name}: {shown}, {summary.get('num_timesteps', 0):,} steps in "
                          f"{summary.get('train_seconds', float('nan')):.1f} s training ({done['wall']:.1f} s wall)")
        else:
            for name in names:
                result.failures.append(f"{name}: {done['error']}")
                bar.write(f"  FAILED {name}: {done['error']}")
        bar.update(len(names))

    try:
        execute(jobs, workers, on_done)
    finally:
        bar.close()
    if not result.run_dirs:
        raise TrainingError(f"every run failed, so there is no report; the first failure: {result.failures[0]}")
    extra = gae_lambda_section(axes, algos, env_id, out)
    result.run_dirs.sort(key=lambda p: [g.name for g in groups].index(p.parent.name))
    if clips:
        from pgrl.record import clip_section

        firsts: dict[str, Path] = {}  # each group's lowest seed that finished
        for run_dir in sorted(result.run_dirs, key=lambda d: int(d.name.lstrip("s") or 0)):
            firsts.setdefault(run_dir.parent.name, run_dir)
        extra.append(clip_section({g.name: firsts[g.name] for g in groups if g.name in firsts}, out / "clips"))
    result.report = _build(result, threshold, command, extra)
    return result


def _build(result: CompareResult, threshold, command, extra):
    from pgrl.report import build_report

    return build_report(result.run_dirs, result.out, threshold=threshold,
                        command=command or shlex.join(["pgrl", *sys.argv[1:]]),
                        extra_sections=extra, failures=result.failures)


def gae_lambda_section(axes, algos: list[str], env_id: str, out: Path) -> list:
    """The GAE(λ) study's section when one axis is gae_lambda (skipped with a note if unavailable)."""
    lambdas = next(([float(parse_overrides([f"gae_lambda={v}"])["gae_lambda"]) for v in vs]
                    for k, vs in axes if k == "gae_lambda"), None)
    if lambdas is None:
        return []
    try:
        from pgrl.studies.gae_lambda import gae_lambda_study
    except ImportError:
        print("note: pgrl.studies.gae_lambda is not available; the report has no GAE(λ) study section")
        return []
    from pgrl.runs import algorithm_class

    algo = next(a for a in algos if "gae_lambda" in algorithm_class(a).config_class.model_fields)
    print(f"running the GAE(λ) study ({algorithm_class(algo).name}, λ in {lambdas}) ...", flush=True)
    try:
        study = gae_lambda_study(env_id, lambdas, out / "gae_lambda_study", algo=algorithm_class(algo).name, seed=0)
    except Exception as exc:  # the comparison itself is done; report it without the study
        print(f"note: the GAE(λ) study failed ({_error_line(exc)}); the report has no study section")
        return []
    from pgrl.report_html import Section

    tables = [study.table] if getattr(study, "table", None) else []
    return [Section("GAE(λ) study", text=getattr(study, "text", ""), images=list(study.figures), tables=tables)]
