"""How the CLI shows progress and reports: rich on a terminal, plain lines otherwise."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Sequence
from typing import TextIO

from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.progress import Progress as RichBar
from rich.table import Table

from service.migration.report import MigrationReport, ValidationResult

log = logging.getLogger(__name__)

FAILURES_SHOWN = 20  # per bucket, unless --verbose
SAMPLE_SHOWN = 5  # per bucket in --check-only, unless --verbose


class BarProgress:
    """A progress bar on the terminal (stderr) for the step under way."""

    def __init__(self) -> None:
        self._bar = RichBar(
            TextColumn("{task.description:<28}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self._tasks: dict[str, TaskID] = {}

    def __enter__(self) -> BarProgress:
        self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._bar.stop()

    def start(self, task: str, total: int | None) -> None:
        self._tasks[task] = self._bar.add_task(task, total=total)

    def advance(self, task: str, amount: int) -> None:
        self._bar.advance(self._tasks[task], amount)

    def finish(self, task: str) -> None:
        self._bar.remove_task(self._tasks.pop(task))  # one bar at a time: the step under way


class LogProgress:
    """One log line per finished task (for logs and pipes)."""

    def __init__(self) -> None:
        self._started: dict[str, tuple[float, int | None]] = {}

    def __enter__(self) -> LogProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def start(self, task: str, total: int | None) -> None:
        self._started[task] = (time.perf_counter(), total)

    def advance(self, task: str, amount: int) -> None:
        pass

    def finish(self, task: str) -> None:
        started, total = self._started.pop(task, (time.perf_counter(), None))
        log.info("%s: %s keys in %.2f s", task, "?" if total is None else total, time.perf_counter() - started)


def progress_for(stream: TextIO, *, quiet: bool) -> BarProgress | LogProgress:
    return BarProgress() if stream.isatty() and not quiet else LogProgress()


# -- reports -------------------------------------------------------------------
def print_report(report: MigrationReport, *, verbose: bool, out: TextIO = sys.stdout) -> None:
    check = report.mode == "check"
    headers = ["bucket", "read", "migrated", "unchanged", "deleted", "failed", "seconds"]
    if check:
        headers.insert(2, "bytes")
    if any(b.pending for b in report.buckets):
        headers.insert(headers.index("deleted"), "not written")
    rows = []
    for b in report.buckets:
        cells = {
            "bucket": b.bucket,
            "read": b.keys,
            "bytes": b.bytes,
            "migrated": b.migrated,
            "unchanged": b.unchanged,
            "not written": b.pending,
            "deleted": b.skipped_deleted,
            "failed": b.failed,
            "seconds": f"{b.seconds:.2f}",
        }
        if not b.present:
            cells = {"bucket": b.bucket, "read": "missing"}
        rows.append([cells.get(h, "") for h in headers])
    _table("what `ekko migrate --force` would do" if check else "migration", headers, rows, out)
    if check or verbose:
        _table("DuckDB", ["table", "rows"], [[t, n] for t, n in report.tables.items()], out)
        print(f"schema version: {report.schema_version}", file=out)
    if report.ignored_buckets:
        print(f"ignored (out of scope): {', '.join(report.ignored_buckets)}", file=out)
    limit = None if verbose else SAMPLE_SHOWN if check else FAILURES_SHOWN
    for b in report.buckets:
        for failure in b.failures[:limit]:
            print(f"  {'would fail' if check else 'failed'}: {b.bucket}/{failure.key}: {failure.reason}", file=out)
        if limit is not None and b.failed > limit:
            print(f"  ... {b.failed - limit} more in {b.bucket} (--verbose or --json lists them all)", file=out)
    if report.backup is not None:
        print(f"backup: {report.backup.path}", file=out)
    if report.validation is not None:
        print_validation(report.validation, verbose=verbose, out=out)
    print(f"{report.status}: {report.message} ({report.seconds:.2f} s)", file=out)


def print_validation(result: ValidationResult, *, verbose: bool, out: TextIO = sys.stdout) -> None:
    if verbose or not result.ok:
        headers = ["table", "kv keys", "migratable", "rows", "missing", "different", "orphans"]
        rows = [[c.table, c.kv_keys, c.migratable, c.db_rows, c.missing, c.different, c.orphans] for c in result.tables]
        _table("integrity", headers, rows, out)
        for c in result.tables:
            samples = {"missing": c.sample_missing, "different": c.sample_different, "orphan": c.sample_orphans}
            for label, sample in samples.items():
                if sample:
                    print(f"  {label} in {c.table}: {', '.join(sample)}", file=out)
    print(f"integrity: {'ok' if result.ok else 'FAILED'}", file=out)


def _table(title: str, headers: Sequence[str], rows: Sequence[Sequence[object]], out: TextIO) -> None:
    if out.isatty():
        table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
        first = max(len(str(row[0])) for row in [headers, *rows])
        for i, header in enumerate(headers):
            table.add_column(header, justify="right", no_wrap=True) if i else table.add_column(header, min_width=first)
        for row in rows:
            table.add_row(*map(str, row))
        Console(file=out).print(table)
        return
    cells = [list(map(str, headers))] + [list(map(str, row)) for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    print(f"{title}:", file=out)
    for row in cells:
        aligned = (c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))
        print("  " + "  ".join(aligned), file=out)
