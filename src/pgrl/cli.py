"""`pgrl train | eval | compare | report | study | tune`: argument parsing only; the work is elsewhere."""

from __future__ import annotations

import argparse
import os
import shlex
import sys

from pgrl.algos import ALGORITHMS
from pgrl.config import POLICIES, parse_overrides
from pgrl.errors import PGRLError

ALGO_NAMES = list(ALGORITHMS)  # the registry, in its order


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pgrl", description="On-policy policy-gradient RL: train, evaluate."
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads (default: $PGRL_NUM_THREADS or 1; see the docs' Speed page, docs/speed.md)",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train an algorithm on a Gymnasium environment into a run folder")
    train.add_argument("algo", nargs="?", help=f"algorithm: {', '.join(ALGO_NAMES)}")
    train.add_argument("env_id", nargs="?", help="Gymnasium environment id, e.g. CartPole-v1")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument(
        "--total-timesteps", type=float, default=None, help="env steps (default: the preset's)"
    )
    train.add_argument("--config", default=None, help="YAML file of hyperparameters")
    train.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one hyperparameter (repeatable), e.g. --set n_steps=64",
    )
    train.add_argument(
        "--env-kwargs", action="append", default=[], metavar="KEY=VALUE",
        help="keyword argument of gym.make (repeatable), e.g. --env-kwargs max_episode_steps=200",
    )
    train.add_argument(
        "--env-wrapper", action="append", default=[], metavar="MODULE:CLASS",
        help="wrap every env copy (repeatable, innermost first), e.g. gymnasium.wrappers:FlattenObservation",
    )
    train.add_argument(
        "--gym-package", action="append", default=[], metavar="MODULE",
        help="import MODULE first (it registers the env id), as rl-zoo's --gym-packages",
    )
    train.add_argument("--preset", default="default", help="named preset for (algo, env), e.g. reference")
    train.add_argument("--policy", default=None, choices=POLICIES,
                       help="policy (SB3's names; the Lstm ones have memory, for ppo and a2c); default: the preset's")
    train.add_argument("--device", default="auto", help="cpu, cuda or auto")
    train.add_argument("--fast-path", default=None, choices=["auto", "on", "off"],
                       help="compiled kernels for small MLP policies on a CPU (docs/speed.md); default: auto")
    train.add_argument("--env-backend", default="auto", choices=["auto", "native", "gymnasium"])
    train.add_argument("--vec", default="sync", choices=["sync", "async"], help="Gymnasium vectorization")
    train.add_argument("--out", default=None, help="run folder (default runs/ALGO-ENV-sSEED-TIME)")
    train.add_argument(
        "--eval-episodes", type=int, default=10, help="greedy episodes after training (0: none)"
    )
    train.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    train.add_argument("--wandb", action="store_true", help="log to Weights & Biases too (pgrl[wandb]; docs/tune.md)")
    train.add_argument("--wandb-project", default=None, metavar="P", help="W&B project (default pgrl)")
    train.add_argument("--wandb-offline", action="store_true", help="keep the W&B run offline (RUN/wandb)")
    train.add_argument(
        "--checkpoint-every", type=float, default=None, metavar="N",
        help="write a training checkpoint every N env steps into RUN/checkpoints (and at the end)",
    )
    train.add_argument(
        "--keep-checkpoints", type=int, default=None, metavar="K", help="keep the newest K checkpoints (default 3)"
    )
    train.add_argument(
        "--resume", default=None, metavar="RUN_DIR",
        help="continue RUN_DIR from its newest checkpoint (ALGO and ENV_ID come from its config.json)",
    )
    train.add_argument(
        "--backend", default="local", choices=["local", "ray"],
        help="local: this process steps the envs; ray: Ray actors do (see docs/distributed.md)",
    )
    train.add_argument("--num-workers", type=int, default=None, metavar="K", help="Ray workers (default 2)")
    train.add_argument(
        "--envs-per-worker", type=int, default=None, metavar="M",
        help="envs per Ray worker (default: n_envs / K; for a3c, n_envs)",
    )
    train.add_argument(
        "--address", default=None, metavar="HOST:PORT",
        help="join the Ray cluster whose head is at HOST:PORT (default: start Ray inside the run)",
    )
    train.add_argument(
        "--max-staleness", type=int, default=None, metavar="N",
        help="a3c on Ray: drop gradients computed more than N updates ago (default 2 x K)",
    )

    ev = sub.add_parser("eval", help="evaluate the model of a run folder")
    ev.add_argument("run_dir", help="run folder or model file")
    ev.add_argument("--episodes", type=int, default=100)
    mode = ev.add_mutually_exclusive_group()
    mode.add_argument("--deterministic", dest="deterministic", action="store_true", default=True)
    mode.add_argument("--stochastic", dest="deterministic", action="store_false")
    ev.add_argument("--seed", type=int, default=None)
    ev.add_argument("--env-backend", default="auto", choices=["auto", "native", "gymnasium"])
    ev.add_argument("--device", default="auto")

    cmp = sub.add_parser(
        "compare", help="train algorithms x settings x seeds on one env and write an HTML report (pgrl.compare)"
    )
    cmp.add_argument("--algos", required=True, help=f"comma-separated, e.g. a2c,ppo ({', '.join(ALGO_NAMES)})")
    cmp.add_argument("--env", required=True, dest="env_id", help="Gymnasium environment id, e.g. CartPole-v1")
    cmp.add_argument("--seeds", type=int, default=3, help="seeds per (algorithm, setting): 0..K-1 (default 3)")
    cmp.add_argument("--total-timesteps", type=float, default=None, help="env steps per run (default: the preset's)")
    cmp.add_argument(
        "--time-budget", type=float, default=None, metavar="S",
        help="stop each run after S training seconds (schedules still follow the preset's step budget)",
    )
    cmp.add_argument(
        "--set", dest="sets", action="append", default=[], metavar="KEY=V1,V2",
        help="a grid axis (repeatable; several give their product), e.g. --set gae_lambda=0.9,0.95",
    )
    cmp.add_argument("--preset", default="default", help="named preset for every run")
    cmp.add_argument("-o", "--out", default=None, help="output folder (default runs/compare-ENV-TIME); must be empty")
    cmp.add_argument("--workers", type=int, default=2, help="worker processes, one core each (default 2)")
    cmp.add_argument("--threshold", type=float, default=None, help="return threshold (default: the env's)")
    cmp.add_argument("--eval-episodes", type=int, default=20, help="greedy episodes after each run (0: none)")
    cmp.add_argument("--no-batch", action="store_true", help="train every seed in its own process")
    cmp.add_argument("--clips", action="store_true", help="show one short greedy GIF per group in the report")

    rep = sub.add_parser("report", help="write report.html, results.csv and figures from run folders")
    rep.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run folders (one environment)")
    rep.add_argument("-o", "--out", required=True, help="output folder for the report")
    rep.add_argument("--threshold", type=float, default=None, help="return threshold (default: the env's)")

    from pgrl.studies.cli import add_study_parser

    add_study_parser(sub)  # pgrl study grad-variance | gae-lambda
    from pgrl.record import add_record_parser

    add_record_parser(sub)  # pgrl record, pgrl eval --record
    from pgrl.export import add_export_parser

    add_export_parser(sub)
    from pgrl.tune import add_tune_parser

    add_tune_parser(sub)  # pgrl tune ALGO ENV
    return parser


def set_threads(requested: int | None) -> None:
    import torch

    threads = requested if requested is not None else int(os.environ.get("PGRL_NUM_THREADS", "1"))
    if threads < 1:
        raise PGRLError(f"--threads must be at least 1, got {threads}")
    torch.set_num_threads(threads)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        set_threads(args.threads)
        from pgrl import runs

        if args.command == "train":
            total = args.total_timesteps
            if total is not None and (total <= 0 or not float(total).is_integer()):
                raise PGRLError(f"--total-timesteps must be a positive whole number, got {total}")
            every = args.checkpoint_every
            if every is not None and (every <= 0 or not float(every).is_integer()):
                raise PGRLError(f"--checkpoint-every must be a positive whole number of steps, got {every:g}")
            if args.keep_checkpoints is not None and args.keep_checkpoints < 1:
                raise PGRLError(f"--keep-checkpoints must be at least 1, got {args.keep_checkpoints}")
            from pgrl.distributed import options_from_flags

            if args.resume is not None:
                if args.algo is not None or args.env_id is not None:
                    raise PGRLError(
                        "pgrl train --resume RUN_DIR takes no ALGO or ENV_ID; they come from RUN_DIR/config.json"
                    )
                if args.wandb:
                    raise PGRLError("--wandb logs new runs only; drop it from pgrl train --resume")
                if args.env_kwargs or args.env_wrapper or args.gym_package:
                    raise PGRLError(
                        "pgrl train --resume takes --env-kwargs, --env-wrapper and --gym-package from "
                        "RUN_DIR/config.json; drop them"
                    )
                if args.backend != "local" or any(
                    v is not None for v in (args.num_workers, args.envs_per_worker, args.max_staleness)
                ):
                    raise PGRLError(
                        "pgrl train --resume takes the backend and workers from RUN_DIR/config.json; "
                        "pass only --address (for a run trained on Ray)"
                    )
                run_dir, _, summary = runs.resume_run(
                    args.resume,
                    total_timesteps=int(total) if total else None,
                    device=args.device,
                    progress_bar=not args.no_progress,
                    eval_episodes=args.eval_episodes,
                    checkpoint_every=int(every) if every else None,
                    keep_checkpoints=args.keep_checkpoints,
                    address=args.address,
                )
            elif args.algo is None or args.env_id is None:
                raise PGRLError(
                    "pgrl train needs ALGO and ENV_ID (e.g. pgrl train ppo CartPole-v1), or --resume RUN_DIR"
                )
            else:
                ray_options = options_from_flags(
                    args.backend, args.num_workers, args.envs_per_worker, args.address, args.max_staleness
                )
                run_dir, _, summary = runs.train_run(
                    args.algo,
                    args.env_id,
                    seed=args.seed,
                    total_timesteps=int(total) if total else None,
                    config_file=args.config,
                    overrides=([f"policy={args.policy}"] if args.policy else [])
                    + ([f"fast_path={args.fast_path}"] if args.fast_path else []) + args.overrides,
                    device=args.device,
                    out=args.out,
                    preset=args.preset,
                    env_backend=args.env_backend,
                    vectorization=args.vec,
                    progress_bar=not args.no_progress,
                    eval_episodes=args.eval_episodes,
                    checkpoint_every=int(every) if every else None,
                    keep_checkpoints=args.keep_checkpoints or 3,
                    ray_options=ray_options,
                    env_kwargs=parse_overrides(args.env_kwargs, "--env-kwargs"),
                    env_wrappers=args.env_wrapper,
                    gym_packages=args.gym_package,
                    wandb={"project": args.wandb_project, "offline": args.wandb_offline} if args.wandb else None,
                )
            print(
                f"trained {summary['algo']} on {summary['env_id']} for {summary['num_timesteps']:,} steps "
                f"in {summary['train_seconds']:.1f} s"
            )
            if "eval_return_mean" in summary:
                print(
                    f"greedy return over {summary['eval_episodes']} episodes: "
                    f"{summary['eval_return_mean']:.1f} ± {summary['eval_return_std']:.1f}"
                )
            print(f"run folder: {run_dir}")
        elif args.command == "compare":
            from pgrl.compare import compare

            total = args.total_timesteps
            if total is not None and (total <= 0 or not float(total).is_integer()):
                raise PGRLError(f"--total-timesteps must be a positive whole number, got {total:g}")
            result = compare(
                [a.strip() for a in args.algos.split(",") if a.strip()], args.env_id, args.seeds, args.out,
                total_timesteps=int(total) if total else None, time_budget=args.time_budget, sets=args.sets,
                preset=args.preset, workers=args.workers, threshold=args.threshold,
                eval_episodes=args.eval_episodes, no_batch=args.no_batch, clips=args.clips,
                command=shlex.join(["pgrl", *(sys.argv[1:] if argv is None else argv)]),
            )
            print(f"report: {result.report}")
            if result.failures:
                print(f"pgrl: {len(result.failures)} run(s) failed; see the report's 'Failed runs'", file=sys.stderr)
                return 1
        elif args.command == "report":
            from pgrl.report import build_report

            command = shlex.join(["pgrl", *(sys.argv[1:] if argv is None else argv)])
            print(f"report: {build_report(args.run_dirs, args.out, threshold=args.threshold, command=command)}")
        elif args.command == "study":
            from pgrl.studies.cli import run_study

            return run_study(args)
        elif args.command == "export":
            from pgrl.export import run_export

            return run_export(args)
        elif args.command == "record" or (args.command == "eval" and args.record):
            from pgrl.record import run_record

            return run_record(args)
        elif args.command == "tune":
            from pgrl.tune import run_tune

            return run_tune(args)
        elif args.command == "eval":
            model, mean, std = runs.eval_run(
                args.run_dir, args.episodes, args.deterministic, args.seed, args.env_backend, args.device
            )
            kind = "greedy" if args.deterministic else "stochastic"
            print(
                f"{model.name} on {model.env_id}: {kind} return over {args.episodes} episodes: {mean:.1f} ± {std:.1f}"
            )
    except PGRLError as exc:
        print(f"pgrl: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("pgrl: interrupted; the model so far is saved in the run folder", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
