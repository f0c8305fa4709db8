"""One Spark session per test process (JVM start-up is slow), on a temporary storage root.

`make test` runs the suite in two processes (pytest-xdist, `-n 2`): 72 against 85 minutes in one process on 2
cores (docs/performance.md; the suite is mostly CPU-bound, so the gain is only where one process waits). Each test
module runs whole in one process (its module fixtures are built once), and the heaviest modules are handed out
first. The reference run is built once for both processes (under a file lock) and only read afterwards.
"""

from __future__ import annotations

import configparser
import dataclasses
import fcntl
import importlib.util
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from pyspark.sql import SparkSession

from lakehouse.bi import free_port
from lakehouse.config import DatabaseSettings, Settings, load_settings
from lakehouse.session import build_session

TEST_HMAC_KEY = "test-only-hmac-key-not-a-secret"
PROJECT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def storage_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("lakehouse")


@pytest.fixture(scope="session")
def settings(storage_root: Path) -> Settings:
    """conf/ as shipped, with the storage root moved to a temporary folder and a small local Spark."""
    os.environ["LAKEHOUSE_HMAC_KEY"] = TEST_HMAC_KEY
    base = load_settings("local")
    spark = dataclasses.replace(base.spark, master="local[2]", shuffle_partitions=4, driver_memory="3g")
    storage = dataclasses.replace(base.storage, root=str(storage_root))
    return dataclasses.replace(base, storage=storage, spark=spark)


def isolated(settings: Settings, name: str) -> Settings:
    """`settings` with its own databases (<name>_bronze, ...) and its own landing, ground-truth and MLflow
    folders (its own model registry).

    Tests share one Spark session and so one catalog; a test module that writes tables works in its own
    databases so that no other module's tables leak into what it reads.
    """
    databases = DatabaseSettings(**{layer: f"{name}_{db}" for layer, db in settings.databases.all().items()})
    storage = dataclasses.replace(
        settings.storage,
        landing=f"{name}/landing",
        ground_truth=f"{name}/ground_truth",
        mlflow=f"{name}/mlflow",
    )
    return dataclasses.replace(settings, databases=databases, storage=storage)


@pytest.fixture(scope="session")
def spark(settings: Settings) -> Iterator[SparkSession]:
    session = build_session(settings)
    yield session
    session.stop()


def load_scale_bench() -> ModuleType:
    """bench/scale/run_bench.py (a script, not a package module) as the module `scale_bench`."""
    if "scale_bench" in sys.modules:
        return sys.modules["scale_bench"]
    spec = importlib.util.spec_from_file_location("scale_bench", PROJECT / "bench" / "scale" / "run_bench.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["scale_bench"] = module
    spec.loader.exec_module(module)
    return module


# --------------------------------------------------------------------------------------------------
# lakehouses built by the CLI, in processes of their own, as a user builds them


def lakehouse_command(*args: str) -> list[str]:
    return [str(Path(sys.executable).parent / "lakehouse"), *args]


@dataclasses.dataclass(frozen=True)
class CliLakehouse:
    """A lakehouse under its own storage root (its own metastore, MLflow store and tables), run with the
    `lakehouse` command in the environment of conf/env/local.yaml."""

    root: Path

    @property
    def environment(self) -> dict[str, str]:
        return {**os.environ, "LAKEHOUSE_STORAGE_ROOT": str(self.root)}

    def run(self, *args: str) -> str:
        """`lakehouse ARGS` to completion; returns its log (stderr)."""
        done = self.output(*args)
        assert done.returncode == 0, f"lakehouse {' '.join(args)} failed:\n{done.stderr[-4000:]}"
        return done.stderr

    def output(self, *args: str) -> subprocess.CompletedProcess[str]:
        """`lakehouse ARGS` to completion, whatever its exit code: its stdout, stderr and return code."""
        return subprocess.run(
            lakehouse_command(*args), env=self.environment, capture_output=True, text=True, check=False, timeout=1800
        )

    def table_paths(self) -> dict[str, Path]:
        """`database.table` -> the Delta folder of every table of the lakehouse."""
        warehouse = self.root / "warehouse"
        return {
            f"{db.name.removesuffix('.db')}.{table.name}": table
            for db in sorted(warehouse.glob("*.db"))
            for table in sorted(db.iterdir())
            if (table / "_delta_log").is_dir()
        }


@dataclasses.dataclass(frozen=True)
class ReferenceRun:
    """One generated delivery run through the whole pipeline without interruption, and the run's log."""

    lakehouse: CliLakehouse
    log: str
    people: int
    seed: int


REFERENCE_PEOPLE, REFERENCE_SEED = 250, 31


def run_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The temporary folder of the whole test run: shared by its processes when pytest-xdist runs it."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if "PYTEST_XDIST_WORKER" in os.environ else base


@pytest.fixture(scope="session")
def reference_run(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> ReferenceRun:
    """`lakehouse generate` then `lakehouse run` on a fresh storage root, once for the whole test run.

    The fault test kills runs of the same delivery and compares them with it; the S3 and cluster tests deliver
    the same files elsewhere and compare their tables with these. The first test process to need it builds it
    under a lock; the other waits and reads the same lakehouse and log. (`settings` exports the tests' HMAC key.)
    """
    folder = run_folder(tmp_path_factory) / "reference-run"
    folder.mkdir(exist_ok=True)
    lakehouse, log = CliLakehouse(folder / "lakehouse"), folder / "run.log"
    with open(folder / "build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, also when the build fails
        if not log.exists():  # a failed build left no log: this process builds it again, from an empty root
            shutil.rmtree(lakehouse.root, ignore_errors=True)
            lakehouse.root.mkdir()
            lakehouse.run("generate", "--people", str(REFERENCE_PEOPLE), "--seed", str(REFERENCE_SEED))
            finished = lakehouse.run("run")
            log.with_suffix(".partial").write_text(finished, encoding="utf-8")
            log.with_suffix(".partial").rename(log)
    return ReferenceRun(lakehouse, log.read_text(encoding="utf-8"), REFERENCE_PEOPLE, REFERENCE_SEED)


# --------------------------------------------------------------------------------------------------
# running the suite in two processes

HEAVIEST_FIRST = ("test_faults", "test_e2e", "test_cluster", "test_corrections", "test_s3", "test_notebooks")
"""Modules that each run the pipeline or wait for the reference run, longest first (measured, `--durations`):
handed out before the rest so that neither process is left with a long one at the end."""

SHARED_SCOPES = {"test_explain": "test_notebooks"}
"""Modules that open the reference lakehouse's embedded Derby metastore, which takes one process at a time: they
run in the same process as the module named, one after the other."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The heaviest modules first (the scheduler below keeps the collection order)."""

    def weight(item: pytest.Item) -> int:
        module = module_of(item.nodeid)
        return HEAVIEST_FIRST.index(module) if module in HEAVIEST_FIRST else len(HEAVIEST_FIRST)

    items.sort(key=weight)  # stable: the order within a module is kept


def module_of(nodeid: str) -> str:
    """'tests/test_e2e.py::test_x[1]' -> 'test_e2e'."""
    return nodeid.split("::", 1)[0].rsplit("/", 1)[-1].removesuffix(".py")


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """pytest-xdist's scheduler for `-n N`: each module runs whole in one process (its module fixtures are built
    once), modules in collection order (heaviest first), SHARED_SCOPES in one process together.

    (pytest-xdist's own `--dist loadgroup` would do it with markers, but it writes the group into a node
    attribute that pytest 9 no longer reads.)
    """
    from xdist.scheduler import LoadScopeScheduling

    class ModuleScheduling(LoadScopeScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            module = module_of(nodeid)
            return SHARED_SCOPES.get(module, module)

    config.option.loadscopereorder = False
    return ModuleScheduling(config, log)


# --------------------------------------------------------------------------------------------------
# the local S3 server (infra/s3/s3-server: S3Proxy on 127.0.0.1)

S3_SERVER_SCRIPT = Path(__file__).resolve().parent.parent / "infra" / "s3" / "s3-server"


@dataclasses.dataclass(frozen=True)
class S3Server:
    """A running S3Proxy: its endpoint, the credentials it accepts (random, this run's) and its object folder."""

    endpoint: str
    access_key: str
    secret_key: str
    objects: Path

    def environment(self) -> dict[str, str]:
        """What a client process needs: the AWS chain's environment variables and the endpoint."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_ENDPOINT_URL_S3": self.endpoint,
        }

    def read_through(self, spark: SparkSession) -> None:
        """Let the tests' own session read s3a:// from this server (set before its first s3a:// access)."""
        conf = spark.sparkContext._jsc.hadoopConfiguration()  # type: ignore[union-attr]
        for key, value in {
            "fs.s3a.endpoint": self.endpoint,
            "fs.s3a.endpoint.region": "us-east-1",
            "fs.s3a.path.style.access": "true",
            "fs.s3a.connection.ssl.enabled": "false",
            "fs.s3a.aws.credentials.provider": "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider",
            "fs.s3a.access.key": self.access_key,
            "fs.s3a.secret.key": self.secret_key,
        }.items():
            conf.set(key, value)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """S3Proxy on a free loopback port with the buckets conf/env/s3.yaml names, stopped at the end of the run."""
    folder = tmp_path_factory.mktemp("s3-server")
    s3 = load_settings("s3").storage
    buckets = sorted({uri.split("/")[2] for uri in (s3.root, s3.path("landing"))})
    port = free_port()
    environment = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}  # new random credentials
    subprocess.run([str(S3_SERVER_SCRIPT), "start", str(folder), str(port), *buckets], env=environment, check=True)
    try:
        credentials = configparser.ConfigParser()
        credentials.read(folder / "aws-credentials")
        profile = credentials["lakehouse-local"]
        yield S3Server(
            endpoint=f"http://127.0.0.1:{port}",
            access_key=profile["aws_access_key_id"],
            secret_key=profile["aws_secret_access_key"],
            objects=folder / "objects",
        )
    finally:
        subprocess.run([str(S3_SERVER_SCRIPT), "stop", str(folder)], check=False)
