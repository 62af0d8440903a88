"""`ekko` command line: run the service, check and repair the KV sync, migrate, maintain the database.

Each command module adds its subcommands; `service.cli.common` holds what they share
(exit codes, connections, asking the running service).
"""

from __future__ import annotations

import argparse
import sys

from service.cli.common import EXIT_CONFIG, run_command, setup_logging
from service.cli.migrate import add_commands as add_migration_commands
from service.cli.run import cmd_run
from service.cli.sync import sync_command
from service.config import ConfigError, Settings


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ekko", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="serve the ekko.* subjects")
    run.set_defaults(func=cmd_run)
    sync = sub.add_parser("sync", help="compare or rebuild the KV buckets from DuckDB")
    sync.add_argument("action", choices=["verify", "repair"])
    sync.set_defaults(func=sync_command)
    add_migration_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"ekko: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    setup_logging(settings.log_level)
    return run_command(lambda: args.func(args, settings))


if __name__ == "__main__":
    sys.exit(main())
