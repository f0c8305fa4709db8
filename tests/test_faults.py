"""Faults: a pipeline killed (SIGKILL) in the middle of each stage and run again equals an uninterrupted run.

Two lakehouses get the same generated delivery. The reference (the suite's `reference_run`) runs the pipeline once
(`lakehouse run`); its log gives the table writes of each stage. In the other, each stage is killed, with its Spark
JVM, right after half of those writes (so some of the stage's tables are written and others are not), and run again
to completion by the next process, which is then killed half-way through the next stage. Every table of the two
lakehouses must then hold the same rows, apart from what names a run or a time, and with floating-point figures to
9 decimals: Spark sums them in an order that varies from run to run, so a model trained twice differs in the last
bits.

The run logs are the exception: ops.pipeline_runs and ops.expectation_results record every attempt, the killed
ones included, and so do mpi.linkage_models and mpi.linkage_metrics(_by_partner), whose rows of finished runs
must equal the reference's. When the link stage is killed after its model was registered, the re-run scores with
that registered version instead of training again (as every production run does), so the model log's `trained`
and `model_json` columns are left out of that comparison.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakehouse.pipeline import STAGES
from tests.conftest import CliLakehouse, ReferenceRun, lakehouse_command
from tests.table_compare import MODEL_LOG_ONLY, MODEL_LOGS, RUN_LOGS, VOLATILE, assert_same_rows, read_tables

pytestmark = pytest.mark.e2e

WRITE = re.compile(r" INFO lakehouse\.[\w.]+: wrote \S+ \(")
STAGE_LINE = re.compile(r" INFO lakehouse\.pipeline: stage (\w+): started")


class Killable(CliLakehouse):
    def run_killed(self, stages: list[str], after_writes: int) -> int:
        """Run `stages` and SIGKILL the process group (the CLI and its Spark JVM) after the last stage's
        `after_writes`-th table write; returns the writes seen (fewer when the stage finished first)."""
        process = subprocess.Popen(
            lakehouse_command("run", "--stages", ",".join(stages)),
            env=self.environment,
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
        )
        assert process.stderr is not None
        seen, counting = 0, False
        for line in process.stderr:
            started = STAGE_LINE.search(line)
            counting = counting or bool(started and started.group(1) == stages[-1])
            if counting and WRITE.search(line):
                seen += 1
                if seen >= after_writes:
                    os.killpg(process.pid, signal.SIGKILL)
                    break
        process.wait(timeout=120)
        return seen


Lakehouses = tuple[CliLakehouse, CliLakehouse, dict[str, dict[str, int]]]
"""The reference, the killed and re-run lakehouse, and the figures of the kills."""


def writes_per_stage(log: str) -> dict[str, int]:
    """Table writes each stage logged, from one `lakehouse run`'s log."""
    counts: dict[str, int] = {}
    stage = None
    for line in log.splitlines():
        started = STAGE_LINE.search(line)
        if started:
            stage = started.group(1)
            counts[stage] = 0
        elif stage is not None and WRITE.search(line):
            counts[stage] += 1
    return counts


def finished_runs(tables: dict[str, DataFrame], stage: str) -> DataFrame:
    runs = tables["ops.pipeline_runs"]
    return runs.where((F.col("stage") == stage) & (F.col("status") == "succeeded")).select("run_id").distinct()


@pytest.fixture(scope="module")
def lakehouses(reference_run: ReferenceRun, tmp_path_factory: pytest.TempPathFactory) -> Lakehouses:
    reference = reference_run.lakehouse
    killed = Killable(tmp_path_factory.mktemp("faults-killed"))
    kills: dict[str, int] = {}
    for folder in ("landing", "synthetic"):  # the same delivery and ground truth, byte for byte
        shutil.copytree(reference.root / folder, killed.root / folder)
    writes = writes_per_stage(reference_run.log)
    assert list(writes) == list(STAGES)
    # Each process finishes the stage the one before it was killed in, then is killed half-way through the next.
    for before, stage in zip((None, *STAGES), STAGES, strict=False):
        assert writes[stage] >= 2, f"stage {stage} logged {writes[stage]} writes: nothing to kill between"
        kills[stage] = killed.run_killed([s for s in (before, stage) if s], after_writes=writes[stage] // 2)
        assert kills[stage] == writes[stage] // 2, f"stage {stage} ended before its kill"
    killed.run("run", "--stages", STAGES[-1])
    return reference, killed, {"writes": writes, "kills": kills}


def test_every_stage_was_killed_half_way(lakehouses: Lakehouses) -> None:
    _, _, figures = lakehouses
    assert set(figures["kills"]) == set(STAGES)
    for stage in STAGES:
        assert 0 < figures["kills"][stage] < figures["writes"][stage], stage


def test_killed_and_rerun_equals_uninterrupted(spark: SparkSession, lakehouses: Lakehouses) -> None:
    reference, killed = (read_tables(spark, lakehouse) for lakehouse in lakehouses[:2])
    assert sorted(killed) == sorted(reference)
    state = sorted(set(reference) - RUN_LOGS - MODEL_LOGS)
    assert {"silver.person_records", "mpi.crosswalk", "mpi.person_id_history", "ops.deliveries"} <= set(state)
    for table in state:
        assert_same_rows(table, killed[table], reference[table])


def test_model_logs_of_finished_runs_equal(spark: SparkSession, lakehouses: Lakehouses) -> None:
    reference, killed = (read_tables(spark, lakehouse) for lakehouse in lakehouses[:2])
    for table in sorted(MODEL_LOGS & set(reference)):
        finished = [finished_runs(tables, "link") for tables in (killed, reference)]
        got, want = (
            t[table].join(f, "run_id", "left_semi") for t, f in zip((killed, reference), finished, strict=True)
        )
        assert_same_rows(table, got, want, drop=VOLATILE | MODEL_LOG_ONLY)
