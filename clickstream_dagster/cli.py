"""The `clickstream` command."""

from __future__ import annotations

import argparse
import os
import sys

from .settings import Settings
from .stack.errors import StackError

# Event time is UTC everywhere, including in every JVM and Python process the CLI starts.
os.environ.setdefault("TZ", "UTC")


def _stack(args: argparse.Namespace, settings: Settings) -> int:
    from .stack import manager

    if args.action == "up":
        statuses = manager.up(settings)
    elif args.action == "down":
        stopped = manager.down(settings)
        print(f"stopped: {', '.join(stopped)}" if stopped else "nothing started by the stack runs")
        return 0
    else:
        statuses = manager.status(settings)
    print(manager.HEADER)
    for status in statuses:
        print(status.line())
    return 0 if all(s.state != "stopped" for s in statuses) else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="clickstream", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    stack = commands.add_parser(
        "stack", help="run the real local stack (Kafka, Elasticsearch) without Docker"
    )
    stack.add_argument("action", choices=["up", "down", "status"])
    stack.set_defaults(handler=_stack)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args, Settings.from_env())
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
