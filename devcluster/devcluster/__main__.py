"""`python -m devcluster <command>`: the table of subcommands is COMMANDS."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import pathlib
import sys
from collections.abc import Callable
from types import ModuleType

from devcluster.apiserver.audit import DEFAULT_MAX_MEGABYTES
from devcluster.apiserver.server import ServeOptions, serve
from devcluster.apiserver.store import DEFAULT_HISTORY


def _runner() -> ModuleType:
    # Imported for `run` only: it loads the kubernetes client, which `serve` (started
    # once per test that needs an API server) has no use for.
    return importlib.import_module("devcluster.runner.run")


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
    parser.add_argument(
        "--audit-log-path",
        default=None,
        help='audit log, one audit.k8s.io/v1 Event per line ("-" stdout, "" none; '
        "default <state-dir>/audit.log)",
    )
    parser.add_argument(
        "--audit-log-maxsize",
        type=int,
        default=DEFAULT_MAX_MEGABYTES,
        help="megabytes before the audit log is rotated to <path>.1 (100; 0: never)",
    )
    parser.add_argument(
        "--stop-with-parent",
        action="store_true",
        help="stop when the process that started this one exits (for runners and tests)",
    )


def _run_serve(args: argparse.Namespace) -> int:
    options = ServeOptions(
        args.host,
        args.port,
        args.state_dir,
        args.watch_history,
        args.audit_log_path,
        args.audit_log_maxsize,
        args.stop_with_parent,
    )
    asyncio.run(serve(options))
    return 0


# name -> (help, add arguments, run)
COMMANDS: dict[
    str,
    tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]],
] = {
    "serve": ("run the Kubernetes API server in the foreground", _add_serve, _run_serve),
    "run": (
        "the API server, the manifests and a one-node cluster running them, in the foreground",
        lambda parser: _runner().add_arguments(parser),
        lambda args: int(_runner().run(args)),
    ),
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m devcluster")
    commands = parser.add_subparsers(dest="command", required=True)
    # Only the command given gets its arguments (and the imports they need).
    chosen = next((arg for arg in argv if not arg.startswith("-")), None)
    for name, (help_text, add_arguments, _) in COMMANDS.items():
        command = commands.add_parser(name, help=help_text)
        if name == chosen:
            add_arguments(command)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    return COMMANDS[args.command][2](args)


if __name__ == "__main__":
    raise SystemExit(main())
