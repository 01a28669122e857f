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


def _notebook(args: argparse.Namespace) -> None:
    from ssmrl_lib.notebooks import BOOK_DIR, execute

    parameters = {key: yaml.safe_load(value) for key, value in args.parameter}
    output = execute(args.name, parameters, Path(args.output_dir) if args.output_dir else BOOK_DIR)
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
    make.add_argument("--policy", default="random", help="'random' or an SB3 checkpoint (.zip)")
    make.add_argument("--seed", type=int, default=0)
    make.add_argument("--overwrite", action="store_true", help="replace an existing dataset")
    make.add_argument("--if-missing", action="store_true", help="do nothing if it exists")
    make.set_defaults(handler=_data_make)
    info = data.add_parser("info", help="summarise a dataset (id or path)")
    info.add_argument("source")
    info.set_defaults(handler=_data_info)

    notebook = commands.add_parser("notebook", help="execute a notebook with papermill")
    notebook.add_argument("name", help="e.g. 01_dt_replication")
    notebook.add_argument(
        "-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
        help="notebook parameter (value parsed as YAML), repeatable",
    )
    notebook.add_argument("--output-dir", help="where the executed notebook goes (default book/)")
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
