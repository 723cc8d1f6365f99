"""`python -m devcluster <command>`: the table of subcommands is COMMANDS."""

from __future__ import annotations

import argparse
import asyncio
import logging
import pathlib
from collections.abc import Callable

from devcluster.apiserver.server import ServeOptions, serve
from devcluster.apiserver.store import DEFAULT_HISTORY
from devcluster.runner import run as runner


def _add_serve(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    parser.add_argument("--port", type=int, default=6443, help="port to bind (6443)")
    parser.add_argument(
        "--state-dir",
        type=pathlib.Path,
        default=pathlib.Path(".devcluster"),
        help="certificates, tokens, kubeconfig and the stored objects",
    )
    parser.add_argument(
        "--watch-history",
        type=int,
        default=DEFAULT_HISTORY,
        help="events kept per resource for watch replay",
    )


def _run_serve(args: argparse.Namespace) -> int:
    asyncio.run(serve(ServeOptions(args.host, args.port, args.state_dir, args.watch_history)))
    return 0


# name -> (help, add arguments, run)
COMMANDS: dict[
    str,
    tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]],
] = {
    "serve": ("run the Kubernetes API server in the foreground", _add_serve, _run_serve),
    "run": (
        "the API server, the manifests and a one-node cluster running them, in the foreground",
        runner.add_arguments,
        runner.run,
    ),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devcluster")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, (help_text, add_arguments, _) in COMMANDS.items():
        add_arguments(commands.add_parser(name, help=help_text))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    return COMMANDS[args.command][2](args)


if __name__ == "__main__":
    raise SystemExit(main())
