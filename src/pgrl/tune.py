"""`pgrl tune ALGO ENV`: hyperparameter search with Optuna, resumable, with a preset and a report.

Every trial trains ALGO on ENV from the preset for (ALGO, ENV) with values sampled from a search
space (rl-zoo's by default: search_spaces.yaml, which documents the format), evaluates the
greedy policy ``n_evaluations`` times during training and reports each mean return to Optuna, whose
pruner (median: below the median of earlier trials at the same evaluation) may stop it early.  A
trial's value is its last evaluation.

OUT holds::

    study.db      the Optuna study (SQLite; --storage may put it elsewhere): every finished trial is
                  committed when it ends, so a killed session loses only the trials it was running
    tune.json     the settings, which `pgrl tune --resume OUT` reads back
    trials.csv    one row per trial: number, state (COMPLETE, PRUNED, FAIL), value, steps, seconds, values
    best.yaml     the best trial as a config file for `pgrl train ALGO ENV --config best.yaml`
    report.html   optimization history and parameter importances (PNGs embedded), the best values, the trials

With ``n_jobs`` J > 1, J processes share the study through its storage (one torch thread each).
"""

from __future__ import annotations

import csv
import json
import math
import time
import warnings
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from pgrl.callbacks import BaseCallback
from pgrl.config import load_config_file, load_preset, merge, merge_preset
from pgrl.errors import ConfigError, PGRLError
from pgrl.evaluation import evaluate_policy
from pgrl.runs import algorithm_class, empty_dir, write_atomic, write_json

STUDY_NAME = "pgrl-tune"
SAMPLERS = ("tpe", "random")
PRUNERS = ("median", "none")
TRANSFORMS = {"pow2": lambda x: 2 ** int(x), "one_minus": lambda x: 1.0 - x}
TRANSFORM_PREFIX = {"pow2": "{}_pow", "one_minus": "one_minus_{}"}


def _optuna():
    try:
        import optuna
    except ImportError:
        raise PGRLError("pgrl tune needs Optuna; install it with pip install 'pgrl[tune]'") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


# -- search spaces ----------------------------------------------------------------------------------


def default_search_space(algo: str) -> dict[str, Any]:
    """rl-zoo's ranges for ALGO as pgrl writes them (search_spaces.yaml)."""
    table = yaml.safe_load((resources.files("pgrl") / "search_spaces.yaml").read_text())
    return dict(table.get(algo) or {})


def search_space(algo: str, path: str | Path | None = None) -> dict[str, Any]:
    """The default space for ALGO with a --search-space file's keys replacing or adding to it (null: drop)."""
    space = default_search_space(algo)
    if path is not None:
        for key, spec in load_config_file(path).items():
            if spec is None:
                space.pop(key, None)
            else:
                space[key] = spec
    if not space:
        raise ConfigError(f"pgrl has no default search space for {algo}; pass --search-space FILE (see "
                          "src/pgrl/search_spaces.yaml for the format)")
    for key, spec in space.items():
        _check_spec(key, spec)
    return space


def _check_spec(key: str, spec: Any) -> None:
    if not isinstance(spec, dict):
        return  # a fixed value
    kinds = [k for k in ("float", "int", "choices") if k in spec]
    if len(kinds) != 1:
        raise ConfigError(f"search space entry {key} must have exactly one of float, int or choices, got {spec}")
    kind = kinds[0]
    if kind in ("float", "int"):
        bounds = spec[kind]
        if not (isinstance(bounds, list) and len(bounds) == 2 and all(isinstance(b, int | float) for b in bounds)
                and bounds[0] <= bounds[1]):
            raise ConfigError(f"search space entry {key}: {kind} takes [LOW, HIGH] with LOW <= HIGH, got {bounds}")
        if spec.get("log") and bounds[0] <= 0:
            raise ConfigError(f"search space entry {key}: a log scale needs LOW > 0, got {bounds[0]}")
    elif not spec["choices"]:
        raise ConfigError(f"search space entry {key}: choices is empty")
    if spec.get("transform") is not None and spec["transform"] not in TRANSFORMS:
        raise ConfigError(f"search space entry {key}: transform must be one of {', '.join(TRANSFORMS)}, "
                          f"got {spec['transform']!r}")
    unknown = set(spec) - {"float", "int", "choices", "log", "transform"}
    if unknown:
        raise ConfigError(f"search space entry {key} has unknown fields {', '.join(sorted(unknown))}; "
                          "use float/int/choices, log and transform")


def sample(trial, space: dict[str, Any]) -> dict[str, Any]:
    """KEY -> the trial's value (transforms and named choices applied)."""
    values = {}
    for key, spec in space.items():
        if not isinstance(spec, dict):
            values[key] = spec
            continue
        transform = spec.get("transform")
        name = TRANSFORM_PREFIX[transform].format(key) if transform else key
        if "float" in spec:
            low, high = spec["float"]
            raw = trial.suggest_float(name, float(low), float(high), log=bool(spec.get("log")))
        elif "int" in spec:
            low, high = spec["int"]
            raw = trial.suggest_int(name, int(low), int(high), log=bool(spec.get("log")))
        else:
            choices = spec["choices"]
            if isinstance(choices, dict):
                raw = choices[trial.suggest_categorical(name, list(choices))]
            else:
                raw = trial.suggest_categorical(name, list(choices))
        values[key] = TRANSFORMS[transform](raw) if transform else raw
    return values


def nest(values: dict[str, Any]) -> dict[str, Any]:
    """{"policy_kwargs.net_arch": [64]} -> {"policy_kwargs": {"net_arch": [64]}}."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out


# -- settings ---------------------------------------------------------------------------------------


@dataclass
class TuneSettings:
    """What `pgrl tune` was asked for; saved as OUT/tune.json so --resume continues the same study."""

    algo: str
    env_id: str
    trials: int = 50
    timesteps: int = 50_000  #: env steps per trial
    n_evaluations: int = 4  #: greedy evaluations per trial (the pruner's intermediate values)
    eval_episodes: int = 10
    seed: int = 0
    sampler: str = "tpe"
    pruner: str = "median"
    n_startup_trials: int = 5  #: trials sampled at random (and never pruned) before TPE and the pruner act
    n_jobs: int = 1
    preset: str = "default"
    storage: str | None = None  #: an Optuna storage URL; None: sqlite:///OUT/study.db
    space: dict[str, Any] = field(default_factory=dict)

    def check(self) -> None:
        algorithm_class(self.algo)
        for name, low in (("trials", 1), ("timesteps", 1), ("n_evaluations", 1), ("eval_episodes", 1),
                          ("n_jobs", 1), ("n_startup_trials", 0)):
            if getattr(self, name) < low:
                raise ConfigError(f"--{name.replace('_', '-')} must be at least {low}, got {getattr(self, name)}")
        if self.sampler not in SAMPLERS:
            raise ConfigError(f"--sampler must be one of {', '.join(SAMPLERS)}, got {self.sampler!r}")
        if self.pruner not in PRUNERS:
            raise ConfigError(f"--pruner must be one of {', '.join(PRUNERS)}, got {self.pruner!r}")
        if self.storage is not None and not self.storage.startswith("sqlite:///"):
            raise ConfigError(f"--storage takes sqlite:///FILE, got {self.storage!r}")


def storage_url(settings: TuneSettings, out: Path) -> str:
    return settings.storage or f"sqlite:///{(out / 'study.db').resolve()}"


# -- trials -----------------------------------------------------------------------------------------


class TrialEvalCallback(BaseCallback):
    """Evaluate greedily every ``eval_every`` steps (at metric rows), report to the trial, stop if pruned."""

    needs_steps = False

    def __init__(self, trial, eval_every: int, episodes: int):
        super().__init__()
        self.trial, self.eval_every, self.episodes = trial, eval_every, episodes
        self.next_eval = eval_every
        self.evaluations: list[tuple[int, float]] = []
        self.pruned = False

    def evaluate(self) -> float:
        mean, _ = evaluate_policy(self.model, None, self.episodes, deterministic=True)
        step = self.model.num_timesteps
        self.evaluations.append((step, float(mean)))
        self.trial.report(float(mean), len(self.evaluations))
        return float(mean)

    def on_row(self, row: dict[str, float]) -> bool:
        if self.model.num_timesteps < self.next_eval:
            return True
        while self.next_eval <= self.model.num_timesteps:
            self.next_eval += self.eval_every
        self.evaluate()
        if self.trial.should_prune():
            self.pruned = True
            return False
        return True


def trial_hparams(settings: TuneSettings, values: dict[str, Any]) -> dict[str, Any]:
    """The preset for (algo, env) with the trial's values over it; batch_size fitted to the rollout."""
    hparams = merge_preset(load_preset(settings.algo, settings.env_id, settings.preset), nest(values))
    if "batch_size" in values and "n_steps" in hparams:
        cls = algorithm_class(settings.algo)
        n_envs = hparams.get("n_envs", cls.config_class.model_fields["n_envs"].default)
        hparams["batch_size"] = min(int(hparams["batch_size"]), int(hparams["n_steps"]) * int(n_envs))
    hparams["n_timesteps"] = settings.timesteps
    return hparams


def make_objective(settings: TuneSettings):
    optuna = _optuna()
    cls = algorithm_class(settings.algo)

    def objective(trial) -> float:
        values = sample(trial, settings.space)
        hparams = trial_hparams(settings, values)
        trial.set_user_attr("hparams", json.dumps(hparams, default=str))
        started = time.perf_counter()
        try:
            model = cls(hparams.pop("policy", None), settings.env_id, seed=settings.seed, preset="none",
                        device="cpu", **hparams)
        except ConfigError as exc:  # an invalid combination: a failed trial, with the reason kept
            trial.set_user_attr("error", str(exc))
            raise
        callback = TrialEvalCallback(trial, max(1, settings.timesteps // settings.n_evaluations),
                                     settings.eval_episodes)
        model.learn(settings.timesteps, callback=callback, progress_bar=False)
        trial.set_user_attr("steps", int(model.num_timesteps))
        trial.set_user_attr("seconds", round(time.perf_counter() - started, 2))
        if callback.pruned:
            raise optuna.TrialPruned()
        if not callback.evaluations or callback.evaluations[-1][0] < model.num_timesteps:
            callback.evaluate()
        return callback.evaluations[-1][1]

    return objective


def _sampler(settings: TuneSettings, resumed: int):
    optuna = _optuna()
    seed = settings.seed + 1000 * resumed  # a resumed session (or another process) draws fresh points
    if settings.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(n_startup_trials=settings.n_startup_trials, multivariate=True, seed=seed)


def _pruner(settings: TuneSettings):
    optuna = _optuna()
    if settings.pruner == "none":
        return optuna.pruners.NopPruner()
    return optuna.pruners.MedianPruner(n_startup_trials=settings.n_startup_trials,
                                       n_warmup_steps=settings.n_evaluations // 3)


# -- the study --------------------------------------------------------------------------------------


@dataclass
class TuneResult:
    out: Path
    study: Any
    counts: dict[str, int]
    best_value: float | None
    best_config: Path | None
    report: Path


INTERRUPTED = "interrupted (the session was killed)"


def finished_trials(study) -> list:
    """Trials that ran to an end: complete, pruned, or failed on their own (not those a kill cut short)."""
    state = _optuna().trial.TrialState
    return [t for t in study.trials if t.state in (state.COMPLETE, state.PRUNED)
            or (t.state == state.FAIL and t.user_attrs.get("error") != INTERRUPTED)]


def tune(settings: TuneSettings | None, out: str | Path | None = None, *, timeout: float | None = None,
         resume: str | Path | None = None, trials: int | None = None, n_jobs: int = 1,
         show_progress: bool = False) -> TuneResult:
    """Run a study until it holds ``settings.trials`` finished trials or ``timeout`` seconds pass, then
    write trials.csv, best.yaml and report.html.  ``resume`` (an earlier OUT) continues that study with
    its saved settings instead (``trials``, ``n_jobs``: the new total and processes)."""
    optuna = _optuna()
    if resume is not None:
        out, settings, resumed = _resume_settings(Path(resume), trials, n_jobs)
    else:
        settings.check()
        out = empty_dir(out, f"tune-{settings.algo}-{settings.env_id.replace('/', '_')}", "tune folder", "--out")
        resumed = 0
        write_json(out / "tune.json", {**asdict(settings), "sessions": 1})
    storage = storage_url(settings, out)
    study = optuna.create_study(study_name=STUDY_NAME, storage=storage, direction="maximize",
                                sampler=_sampler(settings, resumed), pruner=_pruner(settings), load_if_exists=True)
    _requeue_interrupted(study)
    if settings.trials > len(finished_trials(study)):
        if settings.n_jobs == 1:
            _optimize(study, settings, timeout, show_progress)
        else:
            _optimize_in_processes(settings, storage, resumed, timeout)
        study = optuna.load_study(study_name=STUDY_NAME, storage=storage)
    return write_outputs(study, settings, out)


def _optimize(study, settings: TuneSettings, timeout: float | None, show_progress: bool = False) -> None:
    """Trials in this process until the study holds ``settings.trials`` finished ones (other
    processes' included) or ``timeout`` passes."""
    optuna = _optuna()

    def enough(study, trial) -> None:
        if len(finished_trials(study)) >= settings.trials:
            study.stop()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.optimize(make_objective(settings), n_trials=settings.trials - len(finished_trials(study)),
                       timeout=timeout, catch=(PGRLError,), callbacks=[enough], gc_after_trial=False,
                       show_progress_bar=show_progress)


def _worker(settings: dict[str, Any], storage: str, seed_offset: int, timeout: float | None) -> None:
    """One of --n-jobs processes: its own sampler seed and torch thread, the shared study in ``storage``."""
    import torch

    torch.set_num_threads(1)
    settings = TuneSettings(**settings)
    study = _optuna().load_study(study_name=STUDY_NAME, storage=storage, sampler=_sampler(settings, seed_offset),
                                 pruner=_pruner(settings))
    _optimize(study, settings, timeout)


def _optimize_in_processes(settings: TuneSettings, storage: str, resumed: int, timeout: float | None) -> None:
    """--n-jobs J: J processes share the study through its storage (a process each, not threads: torch's
    global random state would mix concurrent trials' seeds).  Up to J - 1 trials may run past the total."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(settings.n_jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        jobs = [pool.submit(_worker, asdict(settings), storage, resumed * 100 + 1 + i, timeout)
                for i in range(settings.n_jobs)]
        for job in jobs:
            job.result()


def _resume_settings(out: Path, trials: int | None, n_jobs: int) -> tuple[Path, TuneSettings, int]:
    """tune.json's settings (``trials``, when given, raises or lowers the total); the sessions so far."""
    path = out / "tune.json"
    try:
        saved = json.loads(path.read_text())
        sessions = int(saved.pop("sessions", 1))
        settings = TuneSettings(**saved)
    except FileNotFoundError:
        raise ConfigError(f"{out} has no tune.json; --resume takes a folder written by pgrl tune") from None
    except (OSError, ValueError, TypeError):
        raise ConfigError(f"{path} is damaged; this tuning folder cannot be resumed") from None
    if trials is not None:
        settings.trials = trials
    settings.n_jobs = n_jobs
    settings.check()
    write_json(path, {**asdict(settings), "sessions": sessions + 1})
    return out, settings, sessions


def _requeue_interrupted(study) -> None:
    """Trials a killed session left RUNNING are marked FAIL and their values queued again."""
    optuna = _optuna()
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        study._storage.set_trial_user_attr(trial._trial_id, "error", INTERRUPTED)
        study._storage.set_trial_state_values(trial._trial_id, state=optuna.trial.TrialState.FAIL)
        if trial.params:
            study.enqueue_trial(trial.params, skip_if_exists=True)


# -- outputs ----------------------------------------------------------------------------------------


def trial_rows(study, space: dict[str, Any]) -> tuple[list[str], list[list]]:
    keys = [k for k, spec in space.items() if isinstance(spec, dict)]
    columns = ["number", "state", "value", "steps", "seconds", *keys, "error"]
    rows = []
    for t in study.trials:
        values = [json.dumps(v) if isinstance(v, list | dict) else v for v in sample_values(t, space).values()]
        value = t.value if t.value is not None else (t.intermediate_values[max(t.intermediate_values)]
                                                     if t.intermediate_values else None)
        rows.append([t.number, t.state.name, value, t.user_attrs.get("steps"), t.user_attrs.get("seconds"),
                     *values, t.user_attrs.get("error", "")])
    return columns, rows


def write_outputs(study, settings: TuneSettings, out: Path) -> TuneResult:
    optuna = _optuna()
    columns, rows = trial_rows(study, settings.space)
    tmp = out / "trials.csv.tmp"
    with tmp.open("w", newline="") as handle:  # full precision: a learning rate of 3e-5 stays 3e-5
        writer = csv.writer(handle)
        writer.writerow(columns)
        writer.writerows([["" if v is None else v for v in row] for row in rows])
    tmp.replace(out / "trials.csv")
    counts = {state.name: sum(1 for t in study.trials if t.state == state) for state in optuna.trial.TrialState}
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    best_path, best_value = None, None
    if complete:
        best = study.best_trial
        best_value = float(best.value)
        best_path = write_best_config(out / "best.yaml", settings, best)
    report = write_tune_report(out, study, settings, columns, rows, counts, best_value)
    return TuneResult(out, study, counts, best_value, best_path, report)


def write_best_config(path: Path, settings: TuneSettings, trial) -> Path:
    """The best trial's hyperparameters (preset included) as a pgrl config file."""
    hparams = json.loads(trial.user_attrs["hparams"])
    header = (f"# pgrl tune {settings.algo} {settings.env_id}: trial {trial.number}, greedy return {trial.value:.2f} "
              f"after {settings.timesteps} steps (seed {settings.seed}).\n"
              f"# Train it with: pgrl train {settings.algo} {settings.env_id} --config {path.name}\n")
    write_atomic(path, header + yaml.safe_dump(merge(hparams), sort_keys=False))
    return path


def write_tune_report(out: Path, study, settings: TuneSettings, columns, rows, counts, best_value) -> Path:
    from pgrl.report_html import Section, write_report_html

    images, notes = [], []
    for name, plot in (("optimization_history.png", _plot_history), ("param_importances.png", _plot_importances)):
        try:
            images.append(plot(study, out / name))
        except (ValueError, RuntimeError) as exc:  # too few trials for importances, say
            notes.append(f"{name}: not drawn ({exc})")
    summary = (f"{settings.algo} on {settings.env_id}: {len(study.trials)} trials of {settings.timesteps:,} steps "
               f"(seed {settings.seed}), {settings.sampler} sampler, {settings.pruner} pruner, "
               f"{settings.n_evaluations} greedy evaluations of {settings.eval_episodes} episodes per trial.\n"
               + ", ".join(f"{n.lower()}: {c}" for n, c in counts.items() if c)
               + (f"\nbest greedy return: {best_value:.2f} (best.yaml)" if best_value is not None else "")
               + ("\n" + "\n".join(notes) if notes else ""))
    best_rows = []
    if best_value is not None:
        best_rows = [[key, _shown(value)] for key, value in sample_values(study.best_trial, settings.space).items()]
    sections = [Section("Study", text=summary, images=images)]
    if best_rows:
        sections.append(Section("Best trial", tables=[(["hyperparameter", "value"], best_rows)]))
    sections.append(Section("Trials", tables=[(columns, [[_shown(v) for v in row] for row in rows])]))
    return write_report_html(out / "report.html", f"pgrl tune: {settings.algo} on {settings.env_id}", sections)


def _shown(value: Any) -> Any:
    """A report cell: floats to 6 significant digits (a gamma of 0.9998 is not "1.00"), lists as JSON."""
    if isinstance(value, float):
        return f"{value:.6g}"
    return json.dumps(value) if isinstance(value, list | dict) else value


def sample_values(trial, space: dict[str, Any]) -> dict[str, Any]:
    """The tuned keys' values of a trial (from its saved hyperparameters; None where it saved none)."""
    hparams = json.loads(trial.user_attrs.get("hparams", "{}"))
    values = {}
    for key, spec in space.items():
        if isinstance(spec, dict):
            node: Any = hparams
            for part in key.split("."):
                node = node.get(part) if isinstance(node, dict) else None
            values[key] = node
    return values


def _plot_history(study, path: Path) -> Path:
    from pgrl.report_plots import _pyplot

    plt = _pyplot()
    optuna = _optuna()
    fig, ax = plt.subplots(figsize=(8, 4.2), constrained_layout=True)
    for state, color in (("COMPLETE", "tab:blue"), ("PRUNED", "tab:orange")):
        trials = [t for t in study.trials if t.state.name == state]
        xs = [t.number for t in trials]
        ys = [t.value if t.value is not None else (t.intermediate_values[max(t.intermediate_values)]
                                                   if t.intermediate_values else math.nan) for t in trials]
        ax.scatter(xs, ys, color=color, label=f"{state.lower()} ({len(trials)})", s=22)
    complete = sorted((t.number, t.value) for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE)
    if complete:
        best, line = -math.inf, []
        for _, value in complete:
            best = max(best, value)
            line.append(best)
        ax.step([n for n, _ in complete], line, where="post", color="tab:green", label="best so far")
    ax.set_xlabel("trial")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_ylabel("greedy return (last evaluation)")
    ax.set_title("optimization history (pruned trials: their last evaluation)")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _plot_importances(study, path: Path) -> Path:
    from pgrl.report_plots import _pyplot

    optuna = _optuna()
    if len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))) < 2:
        raise ValueError("importances need two or more completed trials")
    importances = optuna.importance.get_param_importances(study)
    if not importances:
        raise ValueError("no parameter varied across the completed trials")
    plt = _pyplot()
    names = list(importances)[::-1]
    fig, ax = plt.subplots(figsize=(8, 0.35 * len(names) + 1.4), constrained_layout=True)
    ax.barh(names, [importances[n] for n in names], color="tab:blue")
    ax.set_xlabel("importance (fANOVA, share of the objective's variance)")
    ax.set_title("hyperparameter importances (completed trials)")
    ax.grid(alpha=0.3, axis="x")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


# -- command line -------------------------------------------------------------------------------------


def add_tune_parser(subparsers):
    """`pgrl tune ALGO ENV ...` (or `pgrl tune --resume OUT`)."""
    tune_parser = subparsers.add_parser("tune", help="search hyperparameters with Optuna (resumable; writes a preset)")
    tune_parser.add_argument("algo", nargs="?", help="algorithm with a default search space: ppo, a2c, trpo")
    tune_parser.add_argument("env_id", nargs="?", help="Gymnasium environment id, e.g. CartPole-v1")
    tune_parser.add_argument("--trials", type=int, default=None, help="finished trials to reach (default 50)")
    tune_parser.add_argument("--timeout", type=float, default=None, metavar="S", help="stop starting trials after S s")
    tune_parser.add_argument("--n-jobs", type=int, default=1, metavar="J", help="trials at once, one process each")
    tune_parser.add_argument("--sampler", default="tpe", choices=SAMPLERS)
    tune_parser.add_argument("--pruner", default="median", choices=PRUNERS)
    tune_parser.add_argument("--storage", default=None, metavar="sqlite:///FILE",
                             help="Optuna storage (default sqlite:///OUT/study.db)")
    tune_parser.add_argument("--search-space", default=None, metavar="YAML",
                             help="distributions replacing or adding to the default space (search_spaces.yaml)")
    tune_parser.add_argument("--total-timesteps", type=float, default=50_000, metavar="N",
                             help="env steps per trial (default 50000)")
    tune_parser.add_argument("--n-evaluations", type=int, default=4, help="greedy evaluations per trial (default 4)")
    tune_parser.add_argument("--eval-episodes", type=int, default=10, help="episodes per evaluation (default 10)")
    tune_parser.add_argument("--n-startup-trials", type=int, default=5,
                             help="random trials before TPE and the pruner act (default 5)")
    tune_parser.add_argument("--preset", default="default", help="the preset every trial starts from")
    tune_parser.add_argument("--seed", type=int, default=0, help="every trial's training seed and the sampler's")
    tune_parser.add_argument("-o", "--out", default=None, help="output folder (default runs/tune-ALGO-ENV-TIME)")
    tune_parser.add_argument("--resume", default=None, metavar="OUT", help="continue the study in OUT")
    return tune_parser


def run_tune(args) -> int:
    """`pgrl tune`: run or resume the study, print where the results are."""
    total = args.total_timesteps
    if total <= 0 or not float(total).is_integer():
        raise PGRLError(f"--total-timesteps must be a positive whole number, got {total:g}")
    if args.resume is not None:
        if args.algo is not None or args.env_id is not None:
            raise PGRLError("pgrl tune --resume OUT takes no ALGO or ENV_ID; they come from OUT/tune.json")
        result = tune(None, resume=args.resume, trials=args.trials, n_jobs=args.n_jobs, timeout=args.timeout)
    elif args.algo is None or args.env_id is None:
        raise PGRLError("pgrl tune needs ALGO and ENV_ID (e.g. pgrl tune ppo CartPole-v1), or --resume OUT")
    else:
        algo = algorithm_class(args.algo).name
        settings = TuneSettings(
            algo, args.env_id, trials=args.trials or TuneSettings.trials, timesteps=int(total),
            n_evaluations=args.n_evaluations, eval_episodes=args.eval_episodes, seed=args.seed, sampler=args.sampler,
            pruner=args.pruner, n_startup_trials=args.n_startup_trials, n_jobs=args.n_jobs, preset=args.preset,
            storage=args.storage, space=search_space(algo, args.search_space),
        )
        result = tune(settings, args.out, timeout=args.timeout, n_jobs=args.n_jobs)
    counts = ", ".join(f"{n.lower()} {c}" for n, c in result.counts.items() if c)
    print(f"trials: {counts}")
    if result.best_value is not None:
        print(f"best greedy return {result.best_value:.2f}: {result.best_config}")
    print(f"report: {result.report}")
    return 0
