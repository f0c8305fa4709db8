"""The pipeline on a Spark standalone cluster equals the local run of the same delivery.

infra/spark/spark-cluster starts a master and two workers (1 core each) on 127.0.0.1; the whole pipeline is
submitted to it with spark-submit, as a data engineer submits it (`jobs/pipeline.py --env standalone`). The
executors run the Python of .venv-executor, which has the dependencies but not the project, so they work only
with the code the driver ships to them (the run's log names where they import it from). The delivery is the
suite's reference run's; every gold and mpi table of the cluster's lakehouse must hold the reference's rows.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from lakehouse.bi import free_port
from lakehouse.config import load_settings
from lakehouse.session import CODE_ARCHIVE, executor_python
from tests.conftest import CliLakehouse, ReferenceRun
from tests.table_compare import MODEL_LOG_ONLY, MODEL_LOGS, VOLATILE, assert_same_rows, read_tables

pytestmark = pytest.mark.e2e

PROJECT = Path(__file__).resolve().parent.parent
CLUSTER_SCRIPT = PROJECT / "infra" / "spark" / "spark-cluster"
WORKERS = 2


@pytest.fixture(scope="module")
def master(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """spark://127.0.0.1:<port> of a running cluster, stopped (exactly its processes) at the end."""
    folder = tmp_path_factory.mktemp("spark-cluster")
    port, ui = free_port(), free_port()
    subprocess.run(
        [str(CLUSTER_SCRIPT), "start", str(folder), str(port), str(WORKERS), "1", "2g", str(ui)],
        check=True,
        timeout=180,
    )
    try:
        yield f"spark://127.0.0.1:{port}"
    finally:
        subprocess.run([str(CLUSTER_SCRIPT), "stop", str(folder)], check=False, timeout=60)
        left = sorted(p.name for p in folder.glob("*.pid"))
        assert not left, f"the cluster's stop left {left}"


@pytest.fixture(scope="module")
def cluster_run(
    master: str, reference_run: ReferenceRun, tmp_path_factory: pytest.TempPathFactory
) -> tuple[CliLakehouse, str]:
    """The reference delivery run by spark-submit on the cluster; the lakehouse and the run's log."""
    assert executor_python(load_settings("standalone")), "the executors' Python (make executor-venv) is missing"
    lakehouse = CliLakehouse(tmp_path_factory.mktemp("cluster-lakehouse"))
    for folder in ("landing", "synthetic"):
        shutil.copytree(reference_run.lakehouse.root / folder, lakehouse.root / folder)
    submit = Path(sys.executable).parent / "spark-submit"
    done = subprocess.run(
        [str(submit), "--master", master, "--driver-memory", "2g", "jobs/pipeline.py", "--env", "standalone"],
        cwd=PROJECT,
        env={**lakehouse.environment, "PYSPARK_PYTHON": sys.executable},
        capture_output=True,
        text=True,
        check=False,
        timeout=2400,
    )
    # spark-submit passes the Python driver's stderr, the job's log, on to its own stdout
    log = done.stdout + done.stderr
    assert done.returncode == 0, f"spark-submit failed:\n{log[-4000:]}"
    return lakehouse, log


def test_executors_ran_the_shipped_code(cluster_run: tuple[CliLakehouse, str]) -> None:
    _, log = cluster_run
    shipped = [line for line in log.splitlines() if "code shipped: executors import lakehouse from" in line]
    assert shipped, "the run did not log where its executors import lakehouse from"
    assert CODE_ARCHIVE in shipped[0] and str(PROJECT) not in shipped[0], shipped[0]
    assert "session up: master spark://127.0.0.1:" in log  # against the cluster, not in local mode


def test_cluster_tables_equal_the_local_run(
    spark: SparkSession, reference_run: ReferenceRun, cluster_run: tuple[CliLakehouse, str]
) -> None:
    cluster = read_tables(spark, cluster_run[0])
    local = read_tables(spark, reference_run.lakehouse)
    compared = sorted(t for t in local if t.split(".")[0] in ("gold", "mpi"))
    assert {"gold.dim_person", "mpi.crosswalk"} <= set(compared)
    assert sorted(t for t in cluster if t.split(".")[0] in ("gold", "mpi")) == compared
    assert cluster["gold.dim_person"].count() > 0 and cluster["mpi.crosswalk"].count() > 0
    for table in compared:
        drop = VOLATILE | MODEL_LOG_ONLY if table in MODEL_LOGS else VOLATILE
        assert_same_rows(table, cluster[table], local[table], drop=drop)
