"""Jobs at the same time on one lakehouse: two partners' ingests both land; a delivery submitted twice at once
lands once.

Several Spark applications need a metastore they can share: the Derby network server of
infra/metastore/metastore-server, started here on a free port. The jobs are real `lakehouse run --stages bronze`
processes started together. Delta's optimistic concurrency decides between their commits: a write that conflicts
with another job's is tried again, and the ledger's 'ingested' row is inserted only when absent, so of two jobs
ingesting one delivery, one records it and the other reports it skipped.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakehouse.bi import free_port
from tests.test_bronze import CCC_FILE_0, CCC_FILE_1, UC_FILE, make_delivery

pytestmark = pytest.mark.e2e

SERVER = Path(__file__).resolve().parent.parent / "infra" / "metastore" / "metastore-server"


class Shared:
    """A lakehouse whose jobs share one metastore server."""

    def __init__(self, root: Path, port: int) -> None:
        self.root = root
        self.environment = {
            **os.environ,
            "LAKEHOUSE_STORAGE_ROOT": str(root),
            "LAKEHOUSE_METASTORE_URL": f"jdbc:derby://127.0.0.1:{port}/metastore_db;create=true",
        }

    @property
    def landing(self) -> Path:
        return self.root / "landing"

    def run_together(self, *arguments: list[str]) -> list[subprocess.CompletedProcess[str]]:
        """Start one `lakehouse run --stages bronze ARGS` per item at once; wait for all."""
        command = [str(Path(sys.executable).parent / "lakehouse"), "run", "--stages", "bronze"]
        processes = [
            subprocess.Popen(
                [*command, *args], env=self.environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
            for args in arguments
        ]
        done = []
        for process in processes:
            out, err = process.communicate(timeout=900)
            done.append(subprocess.CompletedProcess(process.args, process.returncode, out, err))
        return done

    def table(self, spark: SparkSession, layer: str, name: str) -> DataFrame:
        return spark.read.format("delta").load(str(self.root / "warehouse" / f"{layer}.db" / name))


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shared]:
    base = tmp_path_factory.mktemp("concurrent")
    server = base / "metastore-server"
    port = free_port()
    subprocess.run([str(SERVER), "start", str(server), str(port)], check=True, capture_output=True, timeout=120)
    try:
        yield Shared(base / "lakehouse", port)
    finally:
        subprocess.run([str(SERVER), "stop", str(server)], check=False, capture_output=True, timeout=60)


def ingested(spark: SparkSession, shared: Shared) -> DataFrame:
    return shared.table(spark, "ops", "deliveries").where(F.col("status") == "ingested")


def assert_succeeded(done: list[subprocess.CompletedProcess[str]]) -> None:
    for job in done:
        errors = [line for line in job.stderr.splitlines() if " ERROR " in line or "Exception:" in line]
        assert job.returncode == 0, f"{' '.join(job.args)} failed:\n" + "\n".join(errors[:6])


def test_two_feeds_ingested_at_once_both_land(spark: SparkSession, shared: Shared) -> None:
    make_delivery(shared.landing, "cccco", "ccc_enrollment", "d2019", {"e_0000.txt": CCC_FILE_0})
    make_delivery(shared.landing, "ucop", "uc_enrollment", "u2020", {"uc.jsonl": UC_FILE}, header=False, fmt="jsonl")
    assert_succeeded(shared.run_together(["--feed", "cccco/ccc_enrollment"], ["--feed", "ucop/uc_enrollment"]))
    ledger = {r["partner"]: r for r in ingested(spark, shared).collect()}
    assert set(ledger) == {"cccco", "ucop"}
    for partner, feed in (("cccco", "ccc_enrollment"), ("ucop", "uc_enrollment")):
        row = ledger[partner]
        assert row["rows_in_files"] == row["rows_bronze"] + row["rows_quarantined"]
        assert shared.table(spark, "bronze", f"{partner}_{feed}").count() == row["rows_bronze"]
        quarantined = shared.table(spark, "quarantine", "rejected_rows").where(F.col("partner") == partner)
        assert quarantined.count() == row["rows_quarantined"]


def test_one_delivery_submitted_twice_at_once_lands_once(spark: SparkSession, shared: Shared) -> None:
    make_delivery(shared.landing, "cccco", "ccc_enrollment", "d2020", {"e_0001.txt": CCC_FILE_1})
    done = shared.run_together([], [])
    assert_succeeded(done)
    rows = ingested(spark, shared).where(F.col("delivery_id") == "d2020").collect()
    assert len(rows) == 1, rows
    bronze = shared.table(spark, "bronze", "cccco_ccc_enrollment").where(F.col("delivery_id") == "d2020")
    quarantined = shared.table(spark, "quarantine", "rejected_rows").where(F.col("delivery_id") == "d2020")
    assert (bronze.count(), quarantined.count()) == (rows[0]["rows_bronze"], rows[0]["rows_quarantined"])
    assert rows[0]["rows_bronze"] + rows[0]["rows_quarantined"] == 2
    # each job says what it did (its bronze figures): one ingested the delivery, and the other skipped it
    # (recorded by the first before it looked, or while it ingested it too)
    outcomes = sorted(
        next(o for o in ("ingested", "skipped") if f"ccc_enrollment/d2020: {o}" in job.stderr) for job in done
    )
    assert outcomes == ["ingested", "skipped"], [job.stderr[-2000:] for job in done]
