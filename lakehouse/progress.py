"""Progress of long stages: every few seconds, a log line with the stage, its elapsed time and the rows Spark has
read and written for it so far.

A stage's Spark jobs run in a job group of their own (`SparkContext.setJobGroup`, on the thread that runs the
stage). A daemon thread polls Spark's status store for the jobs of that group and sums the input and output
records of their stages: rows read from files (bronze's deliveries, Delta tables) and rows written to them. A
stage that ends before the first interval logs nothing, so short runs stay quiet.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from pyspark.sql import SparkSession

logger = logging.getLogger(__name__)

DEFAULT_SECONDS = 30.0
"""Seconds between two progress lines unless a command says otherwise (`--progress SECONDS`)."""


@dataclass
class Figures:
    """What Spark has done for a stage so far."""

    rows_read: int = 0
    rows_written: int = 0
    jobs: int = 0
    running: list[str] = field(default_factory=list)
    """The running jobs' stages, as "job J stage S: done/total tasks"."""


def elapsed(seconds: float) -> str:
    """`3 min 07 s`, `1 h 02 min`, `12 s`."""
    whole = int(seconds)
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} min"


class StageProgress:
    """The Spark work of one job group: figures on demand (`figures()`), and a progress line every `every`
    seconds while it runs (`every` 0: none)."""

    def __init__(self, spark: SparkSession, label: str, every: float) -> None:
        self.spark, self.label, self.every = spark, label, every
        self.group = f"lakehouse-{label}-{uuid.uuid4().hex[:8]}"
        self.started = time.monotonic()
        self._finished_stages: dict[int, tuple[int, int]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.started = time.monotonic()
        self.spark.sparkContext.setJobGroup(self.group, f"lakehouse {self.label}", interruptOnCancel=False)
        if self.every > 0:
            self._thread = threading.Thread(target=self._report, name=f"progress-{self.label}", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.spark.sparkContext.setLocalProperty("spark.jobGroup.id", None)  # type: ignore[arg-type]
        self.spark.sparkContext.setLocalProperty("spark.job.description", None)  # type: ignore[arg-type]

    def figures(self) -> Figures:
        """Rows read and written by the group's jobs so far (finished stages are remembered, so figures stay whole
        when Spark's status store drops old stages), and the running stages' tasks."""
        context = self.spark.sparkContext
        tracker = context.statusTracker()
        store: Any = context._jsc.sc().statusStore()  # type: ignore[union-attr]
        figures = Figures()
        for job_id in sorted(tracker.getJobIdsForGroup(self.group)):
            job = tracker.getJobInfo(job_id)
            if job is None:
                continue
            figures.jobs += 1
            for stage_id in job.stageIds:
                read, written = self._stage_rows(store, stage_id)
                figures.rows_read += read
                figures.rows_written += written
                stage = tracker.getStageInfo(stage_id) if job.status == "RUNNING" else None  # finished: no call
                if stage is not None and stage.numActiveTasks > 0:
                    figures.running.append(
                        f"job {job_id} stage {stage_id}: {stage.numCompletedTasks}/{stage.numTasks} tasks"
                    )
        return figures

    def _stage_rows(self, store: Any, stage_id: int) -> tuple[int, int]:
        if stage_id in self._finished_stages:
            return self._finished_stages[stage_id]
        try:
            data = store.lastStageAttempt(stage_id)
        except Exception:  # not submitted yet, or no longer in the store
            return 0, 0
        rows = int(data.inputRecords()), int(data.outputRecords())
        if str(data.status().toString()) in ("COMPLETE", "SKIPPED", "FAILED"):
            self._finished_stages[stage_id] = rows
        return rows

    def line(self) -> str:
        """One progress line: the label, the time since the start, rows read and written, the running tasks."""
        figures = self.figures()
        running = f"; running {', '.join(figures.running)}" if figures.running else ""
        return (
            f"{self.label}: {elapsed(time.monotonic() - self.started)} elapsed, {figures.rows_read:,} rows read, "
            f"{figures.rows_written:,} rows written in {figures.jobs} Spark jobs{running}"
        )

    def _report(self) -> None:
        while not self._stop.wait(self.every):
            try:
                logger.info("progress: %s", self.line())
            except Exception as exc:  # a progress line is never worth failing a stage for
                logger.debug("progress: no figures (%s)", exc)


@contextmanager
def stage_progress(spark: SparkSession, label: str, every: float = DEFAULT_SECONDS) -> Iterator[StageProgress]:
    """Run the block's Spark jobs in a job group of their own and log their progress every `every` seconds."""
    progress = StageProgress(spark, label, every)
    progress.start()
    try:
        yield progress
    finally:
        progress.stop()
