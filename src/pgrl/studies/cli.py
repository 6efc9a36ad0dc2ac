"""`pgrl study grad-variance | gae-lambda`: parsing and printing only; the work is in the study modules.

The lead's cli.py wires it with ``add_study_parser(sub)`` and, for ``args.command == "study"``,
``return run_study(args)``.  Bad input raises PGRLError (one sentence), which cli.main prints.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pgrl.errors import ConfigError
from pgrl.runs import empty_dir


def add_study_parser(subparsers) -> argparse.ArgumentParser:
    """Add `study` with its two sub-commands to the `pgrl` sub-parsers; returns the `study` parser."""
    study = subparsers.add_parser(
        "study", help="measurement studies at fixed policy parameters (gradient variance, GAE lambda)"
    )
    kinds = study.add_subparsers(dest="study", required=True)

    grad = kinds.add_parser(
        "grad-variance",
        help="variance, signal-to-noise and direction of five policy-gradient estimators on the same episodes",
    )
    grad.add_argument("env_id", help="Gymnasium environment id, e.g. CartPole-v1")
    source = grad.add_mutually_exclusive_group()
    source.add_argument("--algo-params-from", dest="run_dir", default=None, metavar="RUN_DIR",
                        help="hold the policy of this run folder (or model file) fixed")
    source.add_argument("--train-steps", type=float, default=10_000, metavar="N",
                        help="pre-train --algo's preset for N env steps (default 10000)")
    grad.add_argument("--algo", default="ppo", help="algorithm that pre-trains the policy (default ppo)")
    grad.add_argument("--batches", type=int, default=50, metavar="M", help="independent batches (default 50)")
    size = grad.add_mutually_exclusive_group()
    size.add_argument("--batch-episodes", type=int, default=None, metavar="E",
                      help="whole episodes per batch (default 10)")
    size.add_argument("--batch-steps", type=int, default=None, metavar="B",
                      help="instead: whole episodes per batch until it holds at least B steps")
    grad.add_argument("--ref-episodes", type=int, default=2000,
                      help="episodes behind the reference gradient (default 2000)")
    grad.add_argument("--fit-episodes", type=int, default=300, help="episodes the critic is fitted on (default 300)")
    grad.add_argument("--gae-lambda", type=float, default=0.95, help="lambda of the GAE estimator (default 0.95)")
    grad.add_argument("--no-gamma-weighting", action="store_true",
                      help="weigh the VPG/TD/GAE terms by 1 instead of gamma^t (as pgrl's VPG and A2C train)")
    grad.add_argument("--seed", type=int, default=0)
    grad.add_argument("-o", "--out", default=None,
                      help="output folder (default runs/study-grad-variance-ENV-sSEED-TIME)")

    lam = kinds.add_parser("gae-lambda", help="bias and variance of GAE(lambda) advantages against Monte-Carlo truth")
    lam.add_argument("env_id", help="a native env: CartPole-v1, Acrobot-v1, MountainCar-v0, Pendulum-v1, "
                                    "MountainCarContinuous-v0")
    lam.add_argument("--lambdas", default="0,0.5,0.9,0.95,1", help="comma-separated lambdas in [0, 1]")
    lam.add_argument("--algo", default="a2c", help="algorithm that trains the policy and critic (default a2c)")
    lam.add_argument("--train-steps", type=float, default=50_000, metavar="N",
                     help="training env steps (default 50000)")
    lam.add_argument("--states", type=int, default=64, help="start pairs (s, a) (default 64)")
    lam.add_argument("--rollouts", type=int, default=48,
                     help="continuations per start pair for the estimates (default 48)")
    lam.add_argument("--ref-rollouts", type=int, default=192,
                     help="continuations per start pair for each of Q and V in the reference (default 192)")
    lam.add_argument("--horizon", type=int, default=None, help="continuation length (default: gamma^H <= 1e-3)")
    lam.add_argument("--seed", type=int, default=0)
    lam.add_argument("-o", "--out", default=None, help="output folder (default runs/study-gae-lambda-ENV-sSEED-TIME)")
    return study


def _out_dir(out: str | None, name: str, env_id: str, seed: int) -> Path:
    default = f"study-{name}-{env_id.replace('/', '_')}-s{seed}"
    return empty_dir(out, default, what="output folder", flag="-o/--out")


def _whole(name: str, value: float) -> int:
    if value != int(value) or value < 1:
        raise ConfigError(f"{name} must be a positive whole number, got {value:g}")
    return int(value)


def format_table(columns: list[str], rows: list[list]) -> str:
    from pgrl.report_html import format_cell

    cells = [columns] + [[format_cell(v) for v in row] for row in rows]
    widths = [max(len(str(r[i])) for r in cells) for i in range(len(columns))]
    lines = [
        "  ".join(str(c).rjust(w) if i else str(c).ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
        for r in cells
    ]
    return "\n".join(lines)


def run_study(args: argparse.Namespace) -> int:
    """Run the study the parsed arguments name; print its table and files; return 0."""
    from pgrl.studies import write_study_report

    if args.study == "grad-variance":
        from pgrl.envs.make import check_env_id
        from pgrl.studies.grad_variance import grad_variance_study

        check_env_id(args.env_id)  # before any folder is made
        out = _out_dir(args.out, "grad-variance", args.env_id, args.seed)
        result = grad_variance_study(
            args.env_id, out, algo=args.algo, train_steps=_whole("--train-steps", args.train_steps),
            run_dir=args.run_dir, batches=args.batches, batch_episodes=args.batch_episodes,
            batch_steps=args.batch_steps, ref_episodes=args.ref_episodes, fit_episodes=args.fit_episodes,
            gae_lambda=args.gae_lambda, gamma_weighting=not args.no_gamma_weighting, seed=args.seed,
        )
    elif args.study == "gae-lambda":
        from pgrl.studies.gae_lambda import check_restorable, gae_lambda_study, parse_lambdas

        check_restorable(args.env_id)  # before any folder is made
        parse_lambdas(args.lambdas)
        out = _out_dir(args.out, "gae-lambda", args.env_id, args.seed)
        result = gae_lambda_study(
            args.env_id, args.lambdas, out, algo=args.algo, seed=args.seed,
            train_steps=_whole("--train-steps", args.train_steps), n_states=args.states,
            n_rollouts=args.rollouts, n_ref=args.ref_rollouts, horizon=args.horizon,
        )
    else:  # pragma: no cover - argparse restricts the choices
        raise ConfigError(f"unknown study '{args.study}'; use grad-variance or gae-lambda")
    report = write_study_report(result, out / "report.html")
    print(result.title)
    print(format_table(*result.table))
    files = [*(str(f) for f in result.figures), *(str(p) for p in sorted(out.glob("*.csv"))), str(report)]
    print("wrote " + ", ".join(files))
    return 0
