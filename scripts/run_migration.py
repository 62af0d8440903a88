#!/usr/bin/env python3
"""The spec's migration command: the same flags as `ekko migrate`.

python scripts/run_migration.py --check-only [--verbose]
python scripts/run_migration.py [--no-backup] [--force] [--json]
python scripts/run_migration.py --validate
python scripts/run_migration.py --restore-backup PATH [--restore-kv]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

from service.cli.common import EXIT_CONFIG, UsageParser, run_command
from service.cli.logs import setup_logging
from service.cli.migrate import add_migrate_arguments, run_migrate
from service.config import ConfigError, Settings


def main(argv: list[str] | None = None) -> int:
    parser = UsageParser(
        prog="run_migration.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_migrate_arguments(parser)
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"run_migration.py: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    setup_logging(settings.log_level, settings.log_format)
    return run_command(lambda: run_migrate(args, settings))


if __name__ == "__main__":
    sys.exit(main())
