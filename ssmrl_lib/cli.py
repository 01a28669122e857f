"""The ``ssmrl`` command: make datasets, inspect them, execute notebooks.

Bad input ends with one line on stderr naming the problem and the valid choices, exit code 2
(argument errors as well: :class:`_Parser`); Ctrl-C ends with one line, exit code 130. Any
other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import sys
from pathlib import Path
from typing import Any

import yaml

from ssmrl_lib.errors import SsmrlError
from ssmrl_lib.paths import default_minari_store


class _Parser(argparse.ArgumentParser):
    """An argument error in one line (argparse prints the usage first; ``-h`` shows it)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


def _integer(minimum: int) -> Any:
    """An argparse type: an integer of at least ``minimum``."""
    what = "a positive integer" if minimum == 1 else f"an integer of at least {minimum}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}")
        return value

    return parse


_positive, _non_negative = _integer(1), _integer(0)


class _Yaml12Loader(yaml.SafeLoader):
    """YAML with 1.2's numbers: ``1e-3`` is a float (YAML 1.1 wants ``1.0e+3``)."""


_Yaml12Loader.add_implicit_resolver(  # the exponent forms YAML 1.1 reads as strings
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def parse_parameter(name: str, text: str) -> Any:
    """A notebook parameter's value, read as YAML (1.2 numbers); malformed text is one line."""
    try:
        return yaml.load(text, Loader=_Yaml12Loader)  # a SafeLoader: plain data only
    except yaml.YAMLError as error:
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise SsmrlError(
            f"parameter {name!r} = {text!r} is not valid YAML ({problem}); write lists as "
            "[hopper, walker2d], numbers as 3 or 1e-3"
        ) from None


def _data_make(args: argparse.Namespace) -> None:
    from ssmrl_lib.data.local_store import local_dataset_ids
    from ssmrl_lib.data.make import check_free_id, make_dataset
    from ssmrl_lib.envs import get_task

    task = get_task(args.env)
    check_free_id(args.id)
    if args.if_missing and args.id in local_dataset_ids():
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
        learning_starts=args.learning_starts, sampled_eval_episodes=args.sampled_eval_episodes,
        log=_say,
    )
    print(f"trained {args.env} -> {policy_dir}")


def _data_build(args: argparse.Namespace) -> None:
    import time

    from ssmrl_lib.data.rebuild import rebuild_datasets
    from ssmrl_lib.data.recipes import RECIPES
    from ssmrl_lib.envs import MUJOCO_TASKS, get_task

    envs = list(MUJOCO_TASKS) if args.env == "all" else [get_task(args.env).name]
    qualities = list(RECIPES) if args.quality == "all" else [args.quality]
    started = time.monotonic()
    outcomes = rebuild_datasets(
        envs, qualities, jobs=args.jobs, if_missing=args.if_missing,
        if_available=args.if_available, steps=args.steps, seed=args.seed, n_envs=args.n_envs,
        policies_dir=Path(args.policies_dir) if args.policies_dir else None,
        checkpoint=Path(args.checkpoint) if args.checkpoint else None, overwrite=args.overwrite,
    )
    built = sum(outcome.status == "built" for outcome in outcomes)
    removed = sum(outcome.status == "removed" for outcome in outcomes)
    print(f"{built} built, {removed} removed, {len(outcomes) - built - removed} kept or skipped, "
          f"{time.monotonic() - started:.0f} s with {args.jobs} job(s)")


def _data_export_replay(args: argparse.Namespace) -> None:
    from ssmrl_lib.data.checkpoint_choice import medium_is_final
    from ssmrl_lib.data.replay import export_replay
    from ssmrl_lib.envs import get_task

    task, policy_dir = get_task(args.env), Path(args.dir) if args.dir else None
    path = export_replay(task, policy_dir, until_step=args.until_step)
    print(f"exported {path}")
    if args.until_step is None and not medium_is_final(task, policy_dir):
        print(f"note: no {args.env} checkpoint has passed above the medium band yet, so a later "
              "one may still come closer to it: export again then")


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
    parameters = {key: parse_parameter(key, value) for key, value in args.parameter}
    with environment(executor_environment(**executor_options(args))):
        output = execute(
            args.name, parameters, Path(args.output_dir) if args.output_dir else BOOK_DIR
        )
    print(f"executed {args.name} -> {output}")


def _add_device_option(parser: argparse.ArgumentParser) -> None:
    """``--device auto|cpu|cuda`` for a subcommand that runs experiments (sets $SSMRL_DEVICE)."""
    parser.add_argument(
        "--device", help="auto (a CUDA GPU if torch sees one, else the CPU; default), cpu or cuda"
    )


def _apply_device_option(args: argparse.Namespace) -> None:
    """Export ``--device`` for this process and the ones it starts; check it before any work."""
    if getattr(args, "device", None) is None:
        return
    from ssmrl_lib.device import DEVICE_VARIABLE, default_device

    os.environ[DEVICE_VARIABLE] = args.device
    default_device()


def _campaign_run(args: argparse.Namespace) -> None:
    from ssmrl_lib.campaign import DEFAULT_PLAN, load_plan, run_campaign, say
    from ssmrl_lib.paths import runs_root
    from ssmrl_lib.runs import RunStore, make_executor

    if args.nice:
        os.nice(args.nice)
        yield_to_other_sessions()
    plan = load_plan(args.plan or DEFAULT_PLAN)
    store = RunStore(runs_root())
    options = executor_options(args)
    if options["kind"] == "local":
        options["jobs"] = args.jobs or plan.jobs
    executor = make_executor(store=store, **options)
    run_campaign(plan, store, levels=args.levels, only=args.only, log=say, executor=executor)


def _campaign_status(args: argparse.Namespace) -> None:
    from ssmrl_lib.campaign import DEFAULT_PLAN, load_plan, status_report
    from ssmrl_lib.paths import runs_root
    from ssmrl_lib.runs import RunStore

    plan = load_plan(args.plan or DEFAULT_PLAN)
    print(status_report(plan, RunStore(runs_root()), jobs=args.jobs))


def _campaign_checkpoints(args: argparse.Namespace) -> None:
    from ssmrl_lib.campaign import DEFAULT_PLAN, carried_checkpoints, load_plan
    from ssmrl_lib.paths import runs_root
    from ssmrl_lib.runs import RunStore

    plan = load_plan(args.plan or DEFAULT_PLAN)
    for path in carried_checkpoints(plan, RunStore(runs_root()), finished=args.finished):
        print(os.path.relpath(path))


def _runs_migrate(args: argparse.Namespace) -> None:
    from functools import partial

    from ssmrl_lib.experiments.registry import EXPERIMENTS, milestone_records
    from ssmrl_lib.paths import runs_root
    from ssmrl_lib.runs.migrate import migrate_store

    root = Path(args.dir) if args.dir else runs_root()
    moved = migrate_store(root, {name: e.config_class for name, e in EXPERIMENTS.items()},
                          {name: partial(milestone_records, name) for name in EXPERIMENTS})
    for item in moved:
        note = f" ({item.note})" if item.note else ""
        print(f"{item.experiment}/{item.old_key} -> {item.new_key}"
              f"{'' if item.finished else ' (unfinished)'}{note}")
    print(f"{len(moved)} run(s) moved under {root}")


def _runs_check(args: argparse.Namespace) -> None:
    from ssmrl_lib.experiments.registry import EXPERIMENTS
    from ssmrl_lib.paths import runs_root
    from ssmrl_lib.runs import RunStore

    store = RunStore(Path(args.dir) if args.dir else runs_root())
    missing = unlisted = 0
    for experiment in EXPERIMENTS.values():
        for notebook, overrides in experiment.notebooks.items():
            try:
                specs = experiment.grid(args.profile, **overrides)
            except SsmrlError as error:  # e.g. a dataset not built yet
                unlisted += 1
                print(f"{notebook:<18} {experiment.name:<17} grid not listed: {error}")
                continue
            hits = sum(bool((run := store.find(s.experiment, s.config)) and run.finished)
                       for s in specs)
            missing += len(specs) - hits
            print(f"{notebook:<18} {experiment.name:<17} {hits:>3}/{len(specs):<3} runs cached")
    if missing or unlisted:
        raise SsmrlError(f"{missing} run(s) of the {args.profile} profile's grids are not in "
                         f"{store.root} (the notebooks would train them); {unlisted} grid(s) "
                         "could not be listed")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="ssmrl", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    data = commands.add_parser("data", help="offline datasets").add_subparsers(
        dest="data_command", required=True
    )
    make = data.add_parser("make", help="make a local Minari dataset by running a policy")
    make.add_argument("--env", required=True, help="hopper, halfcheetah or walker2d")
    make.add_argument("--id", required=True, help="dataset id, e.g. ssmrl/hopper/random-v0")
    make.add_argument("--steps", type=_positive, required=True, help="at least this many steps")
    make.add_argument(
        "--policy", default="random", help="'random' or a checkpoint (.npz actor or SB3 .zip)"
    )
    make.add_argument("--seed", type=_non_negative, default=0)
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
    train.add_argument("--steps", type=_positive, required=True, help="train up to this many steps")
    train.add_argument("--dir", help="policy directory (default data/policies/<env>)")
    train.add_argument("--seed", type=_non_negative, default=0)
    train.add_argument("--eval-every", type=_positive, default=10_000)
    train.add_argument("--eval-episodes", type=_positive, default=10,
                       help="deterministic episodes per evaluation (default 10)")
    train.add_argument(
        "--sampled-eval-episodes", type=_non_negative, default=50,
        help="episodes of sampled actions per evaluation, which the medium/expert choice uses "
        "(default 50; 0 for none, as the policies trained before this option)",
    )
    train.add_argument("--learning-starts", type=_non_negative, default=10_000)
    train.add_argument("--threads", type=_positive, default=1, help="torch threads (default 1)")
    train.set_defaults(handler=_data_train_policy)

    build = data.add_parser(
        "build", help="build ssmrl/<env>/<quality>-v0 by D4RL's recipe from the behavior policies"
    )
    build.add_argument("--env", required=True, help="hopper, halfcheetah, walker2d or all")
    build.add_argument(
        "--quality", required=True,
        help="random, medium, medium-replay, medium-expert, expert or all",
    )
    build.add_argument("--steps", type=_positive, help="steps per policy (default 1000000)")
    build.add_argument("--seed", type=_non_negative, default=0)
    build.add_argument("--n-envs", type=_positive, default=8, help="environments run in lockstep")
    build.add_argument("--jobs", type=_positive, default=1,
                       help="datasets built in parallel processes")
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
    export.add_argument("--until-step", type=_positive,
                        help="default: the medium checkpoint's step")
    export.set_defaults(handler=_data_export_replay)

    notebook = commands.add_parser("notebook", help="execute a notebook with papermill")
    notebook.add_argument("name", help="e.g. 01_dt_replication")
    notebook.add_argument(
        "-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
        help="a variable of the notebook's parameters cell (profile, envs, models, seeds) or any "
        "other setting by its dotted name (ppo.learning_rate); value parsed as YAML; repeatable",
    )
    notebook.add_argument("--output-dir", help="where the executed notebook goes (default book/)")
    add_executor_options(notebook)
    _add_device_option(notebook)
    notebook.set_defaults(handler=_notebook)

    campaign = commands.add_parser(
        "campaign", help="work through the campaign plan, milestone by milestone"
    ).add_subparsers(dest="campaign_command", required=True)
    for name, handler, text in (
        ("run", _campaign_run, "run the plan's runs (resumes where it stopped)"),
        ("status", _campaign_status, "runs done and pending, core-hours spent and left"),
        ("checkpoints", _campaign_checkpoints,
         "checkpoint files a later milestone resumes from (what `make campaign-save` commits)"),
    ):
        sub = campaign.add_parser(name, help=text)
        sub.add_argument("--plan", help="plan file (YAML; default campaign/plan.yaml)")
        sub.set_defaults(handler=handler)
        if name == "checkpoints":
            sub.add_argument("--finished", action="store_true",
                             help="those of runs at the plan's end instead (nothing resumes)")
            continue
        sub.add_argument("--jobs", type=int, help="runs at once (default: the plan's)")
        if name == "run":
            sub.add_argument("--levels", type=int, help="stop after this many milestones")
            sub.add_argument("--only", nargs="+", metavar="ENTRY", help="only these entries")
            sub.add_argument("--nice", type=int, default=10, help="niceness increment (10)")
            _add_device_option(sub)
            add_executor_options(sub, jobs=False)

    runs = commands.add_parser("runs", help="the run store").add_subparsers(
        dest="runs_command", required=True
    )
    migrate = runs.add_parser(
        "migrate", help="one-time: move runs to cache keys without their horizon"
    )
    migrate.add_argument("--dir", help="run store (default $SSMRL_RUNS_DIR or data/runs)")
    migrate.set_defaults(handler=_runs_migrate)
    check = runs.add_parser(
        "check", help="is every run of every notebook's grid at a profile cached? (no training)"
    )
    check.add_argument("--profile", default="quick")
    check.add_argument("--dir", help="run store (default $SSMRL_RUNS_DIR or data/runs)")
    check.set_defaults(handler=_runs_check)
    return parser


def yield_to_other_sessions() -> None:
    """In a background job that runs in a session of its own (``make campaign`` and
    ``make policies-background`` start one with ``setsid`` and set ``SSMRL_BACKGROUND=1``),
    give this process's niceness to the session's autogroup. With Linux's autogroup scheduling
    (``kernel.sched_autogroup_enabled``) niceness only ranks processes within one session, so
    a nice'd job in its own session would otherwise take a full share of the CPU from the
    user's interactive work. Anywhere else it would lower the user's shell too: left alone."""
    niceness = os.nice(0)
    if niceness > 0 and os.environ.get("SSMRL_BACKGROUND") == "1":
        # no autogroup (another OS, or the kernel has it off): nice alone ranks the processes
        with contextlib.suppress(OSError):
            Path("/proc/self/autogroup").write_text(str(niceness))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    default_minari_store()
    yield_to_other_sessions()
    try:
        _apply_device_option(args)
        args.handler(args)
    except SsmrlError as error:  # bad input: one line; anything else is a bug, with traceback
        print(f"ssmrl: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ssmrl: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
