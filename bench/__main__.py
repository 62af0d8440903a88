"""`python -m bench [--quick] [NAME ...]` (or `python3 dev.py bench ...`): the benchmarks, one after another.

Each runs as `python -m bench.<name> [--quick]` in a process of its own (a clean
event loop and no leftovers from the previous one). Exit status 0 when every
benchmark exited 0 (goals met), 1 otherwise; the figures are printed either way.
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
from collections.abc import Sequence

from bench.harness import ROOT

BENCHMARKS = (
    "get_bench",
    "relay_bench",
    "write_bench",
    "reads_bench",
    "migration_bench",
    "login_bench",
    "client_bench",
    "ingest_bench",
    "balance_scale",
    "report_bench",
    "mixed_bench",
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run of each benchmark")
    parser.add_argument("only", nargs="*", metavar="NAME", help=f"run only these of {', '.join(BENCHMARKS)}")
    args = parser.parse_args(argv)
    if unknown := set(args.only) - set(BENCHMARKS):
        parser.error(f"unknown benchmark {', '.join(sorted(unknown))}; choose from {', '.join(BENCHMARKS)}")
    failed = []
    for name in args.only or BENCHMARKS:
        if importlib.util.find_spec(f"bench.{name}") is None:
            print(f"\n== {name}: not present, skipped", flush=True)
            continue
        command = [sys.executable, "-m", f"bench.{name}", *(["--quick"] if args.quick else [])]
        print(f"\n== python {' '.join(command[1:])}", flush=True)
        if subprocess.call(command, cwd=ROOT) != 0:
            failed.append(name)
    print(f"\n== goals not met or failed: {', '.join(failed)}" if failed else "\n== every goal met")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
