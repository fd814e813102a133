"""What the benchmarks share: each phase runs in a process of its own (so its peak memory is
its own) and reports JSON; the median of several rounds is what counts."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from collections.abc import Iterable


def peak_mb(workers: int = 0) -> float:
    """Peak resident memory of this process plus, for each of its ``workers`` (finished)
    worker processes, the most any of them reached: a bound on the phase's total."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss if workers else 0
    return (own + workers * child) / 1024


def run_phase(script: str, *args: str) -> dict[str, float]:
    """Run ``script --phase ARGS`` in a fresh interpreter; its last line is the JSON result."""
    out = subprocess.run(
        [sys.executable, script, "--phase", *args], check=True, capture_output=True, text=True
    ).stdout
    return json.loads(out.strip().splitlines()[-1])  # type: ignore[no-any-return]


def median(results: Iterable[dict[str, float]]) -> dict[str, float]:
    """The result with the median time."""
    ordered = sorted(results, key=lambda r: r["seconds"])
    return ordered[len(ordered) // 2]
