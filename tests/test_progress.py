"""Progress of long stages (lakehouse.progress): rows read and written as Spark counts them, lines while a stage
runs, and the stage totals of a real run, in the form the scale benchmark reads."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from lakehouse.pipeline import STAGES
from lakehouse.progress import StageProgress, elapsed, stage_progress
from tests.conftest import ReferenceRun, load_scale_bench


def test_elapsed_reads_like_a_clock() -> None:
    assert [elapsed(s) for s in (0, 12.9, 60, 187, 3599, 3600, 3725)] == [
        "0 s",
        "12 s",
        "1 min 00 s",
        "3 min 07 s",
        "59 min 59 s",
        "1 h 00 min",
        "1 h 02 min",
    ]


def test_figures_count_the_rows_read_and_written(spark: SparkSession, tmp_path: Path) -> None:
    spark.range(0, 1234, numPartitions=3).write.parquet(str(tmp_path / "in"))
    spark.range(0, 99).count()  # outside the group: not counted
    with stage_progress(spark, "stage test", every=0) as progress:
        spark.read.parquet(str(tmp_path / "in")).where("id % 2 = 0").write.parquet(str(tmp_path / "out"))
        figures = progress.figures()
        line = progress.line()
    assert (figures.rows_read, figures.rows_written) == (1234, 617)
    assert figures.jobs >= 1 and not figures.running
    assert re.fullmatch(r"stage test: \d+ s elapsed, 1,234 rows read, 617 rows written in \d+ Spark jobs", line), line
    assert spark.sparkContext.getLocalProperty("spark.jobGroup.id") is None  # the group ends with the block


def test_a_long_stage_logs_progress_while_it_runs(spark: SparkSession, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="lakehouse.progress")
    with stage_progress(spark, "stage slow", every=0.5):
        # 4 tasks of 1.5 s each (Thread.sleep through reflect) on 2 cores: about 3 s
        spark.range(0, 4, numPartitions=4).selectExpr("reflect('java.lang.Thread', 'sleep', 1500L)").collect()
    lines = [r.getMessage() for r in caplog.records if r.name == "lakehouse.progress"]
    assert len(lines) >= 3, lines
    assert all(line.startswith("progress: stage slow: ") for line in lines), lines
    assert any("running job" in line and "tasks" in line for line in lines), lines


def test_no_line_when_every_is_zero(spark: SparkSession, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="lakehouse.progress")
    progress = StageProgress(spark, "stage quiet", every=0)
    progress.start()
    spark.range(0, 2, numPartitions=2).selectExpr("reflect('java.lang.Thread', 'sleep', 500L)").collect()
    progress.stop()
    assert not [r for r in caplog.records if r.name == "lakehouse.progress"]


def test_every_stage_of_a_run_logs_its_row_totals(reference_run: ReferenceRun) -> None:
    """Each stage's last line gives the rows it read and wrote, as bench/scale/run_bench.py parses them."""
    done = {m.group(1): m for m in map(load_scale_bench().DONE.search, reference_run.log.splitlines()) if m}
    assert list(done) == list(STAGES)
    read = {stage: int(m.group(3).replace(",", "")) for stage, m in done.items()}
    written = {stage: int(m.group(4).replace(",", "")) for stage, m in done.items()}
    assert all(read[stage] > 0 and written[stage] > 0 for stage in STAGES), (read, written)
    bronze_rows = re.search(r'"rows_bronze": (\d+)', done["bronze"].group(5))
    assert bronze_rows is not None and written["bronze"] >= int(bronze_rows.group(1))
