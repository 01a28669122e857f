"""The ``ssmrl`` command: make datasets, inspect them, execute notebooks.

Bad input ends with one line on stderr naming the problem and the valid choices, exit code 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from ssmrl_lib.errors import SsmrlError


def _data_make(args: argparse.Namespace) -> None:
    import minari

    from ssmrl_lib.data.make import make_dataset
    from ssmrl_lib.envs import get_task

    task = get_task(args.env)
    if args.if_missing and args.id in minari.list_local_datasets():
        print(f"{args.id} exists; kept")
        return
    dataset = make_dataset(
        task, args.id, args.steps, seed=args.seed, policy=args.policy,
        overwrite=args.overwrite,
    )
    print(f"made {args.id}: {dataset.total_episodes} episodes, {dataset.total_steps} steps")


def _data_info(args: argparse.Namespace) -> None:
    from ssmrl_lib.data import load_trajectories

    trajectories = load_trajectories(args.source, download=False)
    returns = trajectories.returns
    print(
        f"{trajectories.dataset_id} ({trajectories.gym_id}): {len(returns)} episodes, "
        f"{trajectories.lengths.sum()} steps, return {returns.mean():.1f} ± {returns.std():.1f}"
    )


def _say(line: str) -> None:
    """A log line that leaves an active progress bar intact."""
    from tqdm import tqdm

    tqdm.write(line)
    sys.stdout.flush()


def _data_train_policy(args: argparse.Namespace) -> None:
    import torch

    from ssmrl_lib.data.behavior import train_policy
    from ssmrl_lib.envs import get_task

    torch.set_num_threads(args.threads)
    policy_dir = train_policy(
        get_task(args.env), args.steps, policy_dir=Path(args.dir) if args.dir else None,
        seed=args.seed, eval_every=args.eval_every, eval_episodes=args.eval_episodes,
        learning_starts=args.learning_starts, log=_say,
    )
    print(f"trained {args.env} -> {policy_dir}")


def _data_build(args: argparse.Namespace) -> None:
    import time

    from ssmrl_lib.data.rebuild import rebuild_datasets
    from ssmrl_lib.data.recipes import QUALITIES
    from ssmrl_lib.envs import TASKS, get_task

    envs = list(TASKS) if args.env == "all" else [get_task(args.env).name]
    qualities = list(QUALITIES) if args.quality == "all" else [args.quality]
    started = time.monotonic()
    outcomes = rebuild_datasets(
        envs, qualities, jobs=args.jobs, if_missing=args.if_missing,
        if_available=args.if_available, steps=args.steps, seed=args.seed, n_envs=args.n_envs,
        policies_dir=Path(args.policies_dir) if args.policies_dir else None,
        checkpoint=Path(args.checkpoint) if args.checkpoint else None, overwrite=args.overwrite,
    )
    built = sum(outcome.status == "built" for outcome in outcomes)
    print(f"{built} built, {len(outcomes) - built} kept or skipped, "
          f"{time.monotonic() - started:.0f} s with {args.jobs} job(s)")


def _data_export_replay(args: argparse.Namespace) -> None:
    from ssmrl_lib.data.recipes import export_replay
    from ssmrl_lib.envs import get_task

    path = export_replay(
        get_task(args.env), Path(args.dir) if args.dir else None, until_step=args.until_step
    )
    print(f"exported {path}")


def add_executor_options(parser: argparse.ArgumentParser, jobs: bool = True) -> None:
    """``--executor`` and its options, for every command that runs a grid of runs
    (``jobs=False``: the command has its own ``--jobs``)."""
    group = parser.add_argument_group("executor (where runs are computed)")
    group.add_argument("--executor", choices=("local", "ray"), default="local",
                       help="local processes (default) or Ray tasks")
    if jobs:
        group.add_argument("--jobs", type=int,
                           help="local: runs computed in parallel (default: the number of cores)")
    group.add_argument("--address", help="ray: the cluster's address (default: $RAY_ADDRESS, "
                       "else a local Ray instance)")
    group.add_argument("--cpus-per-run", type=float, help="ray: CPUs per run (default 1)")
    group.add_argument("--gpus-per-run", type=float,
                       help="ray: GPUs per run, fractions allowed, e.g. 0.25 (default 0)")


def executor_options(args: argparse.Namespace) -> dict:
    """``add_executor_options``'s values as ``make_executor`` / ``executor_environment``
    keyword arguments (``kind`` first)."""
    return {"kind": args.executor, "jobs": getattr(args, "jobs", None), "address": args.address,
            "cpus_per_run": args.cpus_per_run, "gpus_per_run": args.gpus_per_run}


def _notebook(args: argparse.Namespace) -> None:
    from ssmrl_lib.notebooks import BOOK_DIR, execute
    from ssmrl_lib.paths import environment
    from ssmrl_lib.runs import executor_environment, make_executor

    make_executor(**executor_options(args))  # bad options fail here, not inside the kernel
    parameters = {key: yaml.safe_load(value) for key, value in args.parameter}
    with environment(executor_environment(**executor_options(args))):
        output = execute(
            args.name, parameters, Path(args.output_dir) if args.output_dir else BOOK_DIR
        )
    print(f"executed {args.name} -> {output}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ssmrl", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    data = commands.add_parser("data", help="offline datasets").add_subparsers(
        dest="data_command", required=True
    )
    make = data.add_parser("make", help="make a local Minari dataset by running a policy")
    make.add_argument("--env", required=True, help="hopper, halfcheetah or walker2d")
    make.add_argument("--id", required=True, help="dataset id, e.g. ssmrl/hopper/random-v0")
    make.add_argument("--steps", type=int, required=True, help="at least this many steps")
    make.add_argument(
        "--policy", default="random", help="'random' or a checkpoint (.npz actor or SB3 .zip)"
    )
    make.add_argument("--seed", type=int, default=0)
    make.add_argument("--overwrite", action="store_true", help="replace an existing dataset")
    make.add_argument("--if-missing", action="store_true", help="do nothing if it exists")
    make.set_defaults(handler=_data_make)
    info = data.add_parser("info", help="summarise a dataset (id or path)")
    info.add_argument("source")
    info.set_defaults(handler=_data_info)

    train = data.add_parser(
        "train-policy", help="train (or resume) a behavior policy: SAC, TQC for halfcheetah"
    )
    train.add_argument("--env", required=True, help="hopper, halfcheetah or walker2d")
    train.add_argument("--steps", type=int, required=True, help="train up to this many steps")
    train.add_argument("--dir", help="policy directory (default data/policies/<env>)")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--eval-every", type=int, default=10_000)
    train.add_argument("--eval-episodes", type=int, default=10)
    train.add_argument("--learning-starts", type=int, default=10_000)
    train.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    train.set_defaults(handler=_data_train_policy)

    build = data.add_parser(
        "build", help="build ssmrl/<env>/<quality>-v0 by D4RL's recipe from the behavior policies"
    )
    build.add_argument("--env", required=True, help="hopper, halfcheetah, walker2d or all")
    build.add_argument(
        "--quality", required=True,
        help="random, medium, medium-replay, medium-expert, expert or all",
    )
    build.add_argument("--steps", type=int, help="steps per policy (default 1000000)")
    build.add_argument("--seed", type=int, default=0)
    build.add_argument("--n-envs", type=int, default=8, help="environments run in lockstep")
    build.add_argument("--jobs", type=int, default=1, help="datasets built in parallel processes")
    build.add_argument("--checkpoint", help="use this policy checkpoint (.npz) for medium/expert")
    build.add_argument("--policies-dir", help="behavior policies (default data/policies)")
    build.add_argument("--overwrite", action="store_true", help="replace an existing dataset")
    build.add_argument("--if-missing", action="store_true", help="do nothing if it exists")
    build.add_argument(
        "--if-available", action="store_true",
        help="skip (with a message) recipes whose policy has not reached its level yet",
    )
    build.set_defaults(handler=_data_build)
    export = data.add_parser(
        "export-replay", help="store the replay transitions up to the medium checkpoint (npz)"
    )
    export.add_argument("--env", required=True, help="hopper, halfcheetah or walker2d")
    export.add_argument("--dir", help="policy directory (default data/policies/<env>)")
    export.add_argument("--until-step", type=int, help="default: the medium checkpoint's step")
    export.set_defaults(handler=_data_export_replay)

    notebook = commands.add_parser("notebook", help="execute a notebook with papermill")
    notebook.add_argument("name", help="e.g. 01_dt_replication")
    notebook.add_argument(
        "-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
        help="notebook parameter (value parsed as YAML), repeatable",
    )
    notebook.add_argument("--output-dir", help="where the executed notebook goes (default book/)")
    add_executor_options(notebook)
    notebook.set_defaults(handler=_notebook)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.handler(args)
    except SsmrlError as error:
        print(f"ssmrl: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
