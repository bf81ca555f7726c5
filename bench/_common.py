"""Helpers shared by the benchmark scripts: paths, the machine header, percentiles."""

from __future__ import annotations

import json
import os
import platform
import shlex
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
OUT = BENCH / "out"

if str(REPO) not in sys.path:  # the product packages, also when not installed
    sys.path.insert(0, str(REPO))


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def command_line() -> str:
    """The command that produced this run, as typed from the repository root."""
    python = Path(sys.executable)
    try:
        python_shown = str(python.relative_to(REPO))
    except ValueError:
        python_shown = str(python)
    script = Path(sys.argv[0]).resolve()
    try:
        script_shown = str(script.relative_to(REPO))
    except ValueError:
        script_shown = str(script)
    return shlex.join([python_shown, script_shown, *sys.argv[1:]])


def header(title: str, torch_threads: bool = True) -> None:
    """Print what ran, where: the command, cores, CPU model, torch threads."""
    print(f"== {title}")
    print(f"command: {command_line()}")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    line = f"machine: {cores} cores, {cpu_model()}, python {platform.python_version()}"
    if torch_threads:
        import torch

        line += f", torch {torch.__version__} threads={torch.get_num_threads()}"
    print(line)
    print(f"load at start: {load_line()}", flush=True)


def load_line() -> str:
    """Load average and other busy processes: the cores may be shared with other work."""
    try:
        one, five, _ = os.getloadavg()
    except OSError:
        return "unknown"
    busy = []
    me = os.getpid()
    try:
        import subprocess

        ps = subprocess.run(
            ["ps", "-eo", "pid=,pcpu=,comm="], capture_output=True, text=True, timeout=5
        ).stdout
        for row in ps.splitlines():
            pid, pcpu, comm = row.split(None, 2)
            if int(pid) != me and comm.strip() != "ps" and float(pcpu) >= 20:
                busy.append(f"{comm.strip()}({float(pcpu):.0f}%)")
    except Exception:  # ps is a nicety
        pass
    text = f"loadavg 1m {one:.2f} 5m {five:.2f}"
    if busy:
        text += "; other busy processes: " + ", ".join(busy[:6])
    return text + ("  [timings below are skewed by competing load]" if busy else "")


def footer() -> None:
    print(f"load at end: {load_line()}", flush=True)


def percentile(values: Sequence[float], pct: float) -> float:
    """Inclusive percentile (same method as chatbot.evaluation), NaN for no values."""
    data = sorted(values)
    if not data:
        return float("nan")
    if len(data) == 1:
        return data[0]
    return statistics.quantiles(data, n=100, method="inclusive")[int(pct) - 1]


def p50_p95(values: Sequence[float]) -> str:
    p50, p95 = percentile(values, 50), percentile(values, 95)
    return f"p50 {p50:8.1f} ms  p95 {p95:8.1f} ms  (n={len(values)})"


@dataclass
class EventStream:
    """A server-sent event stream, read line by line (``feed``): when its first event ended,
    the ``final`` event's object and how many ``error`` events came."""

    first: float | None = None  # time.perf_counter() at the end of the first event
    final: dict[str, Any] | None = None
    errors: int = 0
    _event: str = ""

    def feed(self, line: str) -> None:
        if line.startswith("event:"):
            self._event = line[6:].strip()
        elif line == "" and self._event and self.first is None:
            self.first = time.perf_counter()
        elif line.startswith("data:") and self._event == "final":
            self.final = json.loads(line[5:])
        elif line.startswith("data:") and self._event == "error":
            self.errors += 1
