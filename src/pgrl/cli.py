"""`pgrl train | eval`: argument parsing only; the work is in pgrl.runs."""

from __future__ import annotations

import argparse
import os
import sys

from pgrl.errors import PGRLError

ALGO_NAMES = ["reinforce", "vpg", "actor_critic", "a2c", "a3c", "ppo", "trpo"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pgrl", description="On-policy policy-gradient RL: train, evaluate."
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads (default: $PGRL_NUM_THREADS or 1; see README 'Threads')",
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
    train.add_argument("--preset", default="default", help="named preset for (algo, env), e.g. reference")
    train.add_argument("--device", default="auto", help="cpu, cuda or auto")
    train.add_argument("--env-backend", default="auto", choices=["auto", "native", "gymnasium"])
    train.add_argument("--vec", default="sync", choices=["sync", "async"], help="Gymnasium vectorization")
    train.add_argument("--out", default=None, help="run folder (default runs/ALGO-ENV-sSEED-TIME)")
    train.add_argument(
        "--eval-episodes", type=int, default=10, help="greedy episodes after training (0: none)"
    )
    train.add_argument("--no-progress", action="store_true", help="hide the progress bar")
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

    ev = sub.add_parser("eval", help="evaluate the model of a run folder")
    ev.add_argument("run_dir", help="run folder or model file")
    ev.add_argument("--episodes", type=int, default=100)
    mode = ev.add_mutually_exclusive_group()
    mode.add_argument("--deterministic", dest="deterministic", action="store_true", default=True)
    mode.add_argument("--stochastic", dest="deterministic", action="store_false")
    ev.add_argument("--seed", type=int, default=None)
    ev.add_argument("--env-backend", default="auto", choices=["auto", "native", "gymnasium"])
    ev.add_argument("--device", default="auto")
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
            if args.resume is not None:
                if args.algo is not None or args.env_id is not None:
                    raise PGRLError(
                        "pgrl train --resume RUN_DIR takes no ALGO or ENV_ID; they come from RUN_DIR/config.json"
                    )
                run_dir, _, summary = runs.resume_run(
                    args.resume,
                    total_timesteps=int(total) if total else None,
                    device=args.device,
                    progress_bar=not args.no_progress,
                    eval_episodes=args.eval_episodes,
                    checkpoint_every=int(every) if every else None,
                    keep_checkpoints=args.keep_checkpoints,
                )
            elif args.algo is None or args.env_id is None:
                raise PGRLError(
                    "pgrl train needs ALGO and ENV_ID (e.g. pgrl train ppo CartPole-v1), or --resume RUN_DIR"
                )
            else:
                run_dir, _, summary = runs.train_run(
                    args.algo,
                    args.env_id,
                    seed=args.seed,
                    total_timesteps=int(total) if total else None,
                    config_file=args.config,
                    overrides=args.overrides,
                    device=args.device,
                    out=args.out,
                    preset=args.preset,
                    env_backend=args.env_backend,
                    vectorization=args.vec,
                    progress_bar=not args.no_progress,
                    eval_episodes=args.eval_episodes,
                    checkpoint_every=int(every) if every else None,
                    keep_checkpoints=args.keep_checkpoints or 3,
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
