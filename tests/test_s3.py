"""The whole pipeline on S3, against the local S3 server (S3Proxy, started by infra/s3/s3-server).

A generated delivery is uploaded with `lakehouse deliver` (boto3) into the landing bucket, then
`lakehouse run --env s3` (its own process, as a user runs it) reads landing and writes every layer through
s3a://, with credentials from the AWS chain's environment variables only. The delivery is the suite's reference
run's, and the S3 run's gold and public tables must equal that local run's; its counts must reconcile.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T

from lakehouse.config import Settings, load_settings
from lakehouse.gold import GOLD_TABLES
from lakehouse.landing import MANIFEST, deliver
from lakehouse.public.build import PUBLIC_TABLES
from tests.conftest import CliLakehouse, ReferenceRun, S3Server

pytestmark = pytest.mark.e2e

S3_ROOT = "s3a://c2c-lakehouse/test-run"
LAYERS = ("bronze", "quarantine", "silver", "mpi", "gold", "public", "ops")


class Runs:
    """The local reference run and the S3 run of one delivery."""

    def __init__(self, local: CliLakehouse, s3: Settings, local_state: Path, output: str, secret: str) -> None:
        self.local, self.s3, self.local_state, self.output, self.secret = local, s3, local_state, output, secret

    def local_table(self, spark: SparkSession, layer: str, name: str) -> DataFrame:
        return spark.read.format("delta").load(str(self.local.table_paths()[f"{layer}.{name}"]))

    def s3_table(self, spark: SparkSession, layer: str, name: str) -> DataFrame:
        return spark.read.format("delta").load(f"{S3_ROOT}/warehouse/{getattr(self.s3.databases, layer)}.db/{name}")


@pytest.fixture(scope="module")
def runs(
    spark: SparkSession, reference_run: ReferenceRun, s3_server: S3Server, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Runs]:
    local = reference_run.lakehouse
    with mock.patch.dict(os.environ, s3_server.environment()):
        s3 = load_settings("s3")
        for manifest_path in sorted((local.root / "landing").rglob(MANIFEST)):
            manifest = json.loads(manifest_path.read_text())
            files = [manifest_path.parent / f["name"] for f in manifest["files"]]
            deliver(s3, manifest["partner"], manifest["feed"], files, delivery_id=manifest["delivery_id"])

    local_state = tmp_path_factory.mktemp("s3-local-state")
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
        **s3_server.environment(),
        "LAKEHOUSE_STORAGE_ROOT": S3_ROOT,
        "LAKEHOUSE_LOCAL_ROOT": str(local_state),
    }
    done = subprocess.run(
        [str(Path(sys.executable).parent / "lakehouse"), "run", "--env", "s3"],
        env=environment,
        check=False,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    s3_server.read_through(spark)
    yield Runs(local, s3, local_state, done.stdout + done.stderr, s3_server.secret_key)


def test_every_layer_is_written_to_s3_and_nothing_to_local_disk(s3_server: S3Server, runs: Runs) -> None:
    bucket, prefix = S3_ROOT.removeprefix("s3a://").split("/", 1)
    warehouse = s3_server.objects / bucket / prefix / "warehouse"
    for layer in LAYERS:
        database = warehouse / f"{getattr(runs.s3.databases, layer)}.db"
        logs = list(database.glob("*/_delta_log"))
        assert logs, f"no Delta table of {layer} under {database}"
    for name in GOLD_TABLES:
        assert (warehouse / "gold.db" / name / "_delta_log").is_dir(), name
    # This machine holds only what must be local: the Derby metastore and MLflow's store.
    assert {p.name for p in runs.local_state.iterdir()} <= {"metastore", "mlflow"}


def test_every_delivery_lands_and_counts_reconcile(spark: SparkSession, runs: Runs) -> None:
    ledger = runs.s3_table(spark, "ops", "deliveries").collect()
    assert len(ledger) == len(runs.s3.feeds())
    for row in ledger:
        assert row["status"] == "ingested", row
        assert row["rows_in_files"] == row["rows_bronze"] + row["rows_quarantined"], row
        bronze = runs.s3_table(spark, "bronze", f"{row['partner']}_{row['feed']}").count()
        assert bronze == row["rows_bronze"], row


def _comparable(frame: DataFrame) -> DataFrame:
    """The columns that do not depend on when the run happened (no timestamps)."""
    kept = [f.name for f in frame.schema.fields if not isinstance(f.dataType, T.TimestampType)]
    return frame.select(*sorted(kept))


@pytest.mark.parametrize("layer,name", [*(("gold", t) for t in GOLD_TABLES), *(("public", t) for t in PUBLIC_TABLES)])
def test_s3_tables_equal_the_local_run(spark: SparkSession, runs: Runs, layer: str, name: str) -> None:
    local = _comparable(runs.local_table(spark, layer, name))
    s3 = _comparable(runs.s3_table(spark, layer, name))
    assert s3.columns == local.columns
    assert s3.count() == local.count() > 0, name
    assert s3.exceptAll(local).isEmpty() and local.exceptAll(s3).isEmpty(), name


def test_the_s3_secret_is_never_logged(runs: Runs) -> None:
    assert runs.secret not in runs.output
    assert "c2c-lakehouse" in runs.output  # the log is there to search: it names the warehouse
