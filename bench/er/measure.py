"""Measurement shared by the benchmark's runners (run_engine.py, splink/run_splink.py) and its harness.

Needs only the standard library and psutil, so it imports in both the project's .venv and .venv-splink.
"""

from __future__ import annotations

import logging
import os
import platform
import resource
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psutil

_log = logging.getLogger("measure")


def tree_rss_bytes(root: psutil.Process) -> int:
    """Resident memory of `root` plus all its descendants (processes that end meanwhile are skipped)."""
    total = 0
    try:
        procs = [root, *root.children(recursive=True)]
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return 0
    for proc in procs:
        try:
            total += proc.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return total


class ProcessTreeMonitor:
    """Peak resident memory and CPU time of this process (or of `pid`) plus all its descendants (the Spark JVM).

    A background thread samples the tree every `interval_s`; CPU time is also read at each step
    boundary, so that it can be reported per step (a fairer measure than wall time when the
    machine is shared).
    """

    def __init__(self, interval_s: float = 0.2, pid: int | None = None) -> None:
        self._proc = psutil.Process(pid)  # None: this process
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="process-tree-monitor", daemon=True)
        self._lock = threading.Lock()
        self._cpu_by_pid: dict[int, float] = {}
        self.peak_bytes = 0

    def _sample(self) -> None:
        rss = 0
        try:
            procs = [self._proc, *self._proc.children(recursive=True)]
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return  # the monitored process has ended: its last readings stand
        for proc in procs:
            try:
                with proc.oneshot():
                    rss += proc.memory_info().rss
                    times = proc.cpu_times()
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            with self._lock:
                # A process that has ended keeps its last reading.
                self._cpu_by_pid[proc.pid] = times.user + times.system
        with self._lock:
            self.peak_bytes = max(self.peak_bytes, rss)

    def cpu_seconds(self) -> float:
        self._sample()
        with self._lock:
            return sum(self._cpu_by_pid.values())

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self._interval_s)

    def __enter__(self) -> ProcessTreeMonitor:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def peak_mb(self) -> float:
        # ru_maxrss is in KiB on Linux; it catches a peak of this process between two samples.
        own_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        return round(max(self.peak_bytes, own_peak) / 2**20, 1)


class Stopwatch:
    """Wall and CPU seconds (of the monitored process tree) per named step."""

    def __init__(self, monitor: ProcessTreeMonitor, log: logging.Logger | None = None) -> None:
        self._monitor = monitor
        self._log = log or _log
        self.seconds: dict[str, float] = {}
        self.cpu_seconds: dict[str, float] = {}

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        self._log.info("step %s ...", name)
        start, cpu_start = time.perf_counter(), self._monitor.cpu_seconds()
        try:
            yield
        finally:
            self.seconds[name] = round(time.perf_counter() - start, 3)
            self.cpu_seconds[name] = round(self._monitor.cpu_seconds() - cpu_start, 3)
            self._log.info("step %s took %.2f s (%.2f s CPU)", name, self.seconds[name], self.cpu_seconds[name])


def machine_info(load_before: tuple[float, float, float] | None = None) -> dict[str, Any]:
    """Cores, memory, platform, Python and the 1-minute load average (before and now: the machine may be shared)."""
    now = os.getloadavg()[0]
    return {
        "cores": os.cpu_count(),
        "memory_mb": round(psutil.virtual_memory().total / 2**20),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_average_1m": [round(load_before[0], 2), round(now, 2)] if load_before else [round(now, 2)],
    }
