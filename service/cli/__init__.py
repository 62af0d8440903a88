"""ekko: run the data service, check and repair the KV sync, migrate the legacy data,
maintain the database, and ask a running service how it is doing.

Each command module adds its subcommands; `service.cli.common` holds what they share
(exit codes, connections, asking the running service, the --help epilog).
"""

from __future__ import annotations

import argparse
import sys

from service import __version__
from service.cli.common import EXIT_CONFIG, EXIT_USAGE, UsageParser, add_command, env_help, run_command
from service.cli.logs import setup_logging
from service.cli.migrate import add_commands as add_migration_commands
from service.cli.run import cmd_run
from service.cli.status import add_commands as add_status_commands
from service.cli.sync import add_commands as add_sync_commands
from service.config import ENVIRONMENT, ConfigError, Settings

RUN_HELP = """Serve the ekko.* subjects (entity CRUD, login, health, metrics, admin) until Ctrl-C or SIGTERM.

With NATS_URL unset it uses a nats-server on 127.0.0.1:4222, or starts the bundled one
(JetStream store in <data dir>/jetstream). At start it applies pending forward-only schema
migrations to DUCKDB_PATH; on stop it drains NATS, lets the relay publish what is pending and
checkpoints DuckDB. With EKKO_METRICS_PORT set it also serves Prometheus metrics over HTTP."""


def build_parser() -> argparse.ArgumentParser:
    parser = UsageParser(
        prog="ekko",
        description=__doc__,
        epilog=env_help(ENVIRONMENT),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"ekko {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = add_command(sub, "run", summary="serve the ekko.* subjects", description=RUN_HELP, env=ENVIRONMENT)
    run.set_defaults(func=cmd_run)
    add_sync_commands(sub)
    add_migration_commands(sub)
    add_status_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help and --version exit 0; usage errors EXIT_USAGE
        return EXIT_USAGE if exc.code is not None and not isinstance(exc.code, int) else exc.code or 0
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"ekko: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    setup_logging(settings.log_level, settings.log_format)
    return run_command(lambda: args.func(args, settings))


if __name__ == "__main__":
    sys.exit(main())
