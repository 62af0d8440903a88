"""The report benchmark runs end to end in its quick mode: builds both databases and the
legacy buckets, serves them from `python -m bench.serve`, and prints a figure or "not
available" for every measure."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from bench.measures import MEASURES

ROOT = Path(__file__).resolve().parents[2]
FIGURES = r"\d+\.\d / \d+\.\d"


def test_the_quick_report_bench_measures_every_subject_this_branch_serves() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.report_bench", "--quick", "--samples", "5"],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert re.search(r"copied [\d,]+ rows into the legacy KV buckets", out)
    rows = {line.split("|")[0].strip(): line for line in out.splitlines() if "|" in line}
    for measure in MEASURES:
        assert measure.name in rows, out
        assert "not available" in rows[measure.name] or re.search(FIGURES, rows[measure.name]), rows[measure.name]
    for served in ("alert_stats", "wallet_overview", "search"):  # with their KV way and ratio
        assert len(re.findall(FIGURES, rows[served])) == 3 and re.search(r"\d+x \|", rows[served]), rows[served]
