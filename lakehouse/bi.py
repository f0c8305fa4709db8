"""The BI endpoint: the Spark Thrift server (HiveServer2 protocol) over the gold and public tables only.

BI tools (DBeaver, Tableau, Power BI, Superset) connect with their Hive or Spark SQL JDBC/ODBC driver to
`jdbc:hive2://127.0.0.1:<port>/<gold database>`. `lakehouse serve-bi` starts the server in three steps:

1. a short Spark job (`python -m lakehouse.bi register`, a process of its own) writes a catalog of the endpoint's
   own, a Derby metastore under `<storage root>/bi/`: the gold and public databases and, in them, every gold
   and public table, registered by the location of its Delta files (no copy; each query reads the table's
   latest version). Restricted databases (bronze, quarantine, silver, mpi, ops) are never registered;
2. the Thrift server starts as a background process (`spark-submit --class ...HiveThriftServer2`) on that
   catalog, bound to 127.0.0.1, with the read-only guard (`org.c2c.lakehouse.bi.ReadOnlyGuard`, infra/jvm)
   and SQL on files switched off: a BI user can query and describe the registered tables and nothing else,
   cannot register a table over a restricted zone's files, read a path, or change a setting;
3. its pid, host, port and log are recorded in `<storage root>/bi/thriftserver.json`; `lakehouse stop-bi`
   stops exactly that process.

Because the endpoint has its own metastore, it runs while pipeline jobs use the lakehouse's (an embedded
Derby metastore admits one process at a time). Tables rebuilt later are seen at once; tables added to gold or
public need a restart (`make stop-bi serve-bi`).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from lakehouse.config import Settings, names_shared_catalog
from lakehouse.session import PROJECT_DIR, database_location, session_conf

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

logger = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 10000
SERVER_CLASS = "org.apache.spark.sql.hive.thriftserver.HiveThriftServer2"
GUARD_CLASS = "org.c2c.lakehouse.bi.ReadOnlyGuard"
BI_LAYERS = ("gold", "public")
"""The layers the endpoint serves; every other layer is restricted."""


class BiError(RuntimeError):
    """The BI endpoint could not be started, registered or stopped (the message says why and what to do)."""


@dataclass(frozen=True)
class BiPaths:
    """Where the endpoint keeps its state: a folder under the storage root (local roots) or the project."""

    folder: Path

    @property
    def metastore(self) -> Path:
        return self.folder / "metastore"

    @property
    def state(self) -> Path:
        return self.folder / "thriftserver.json"

    @property
    def log(self) -> Path:
        return self.folder / "thriftserver.log"


def bi_paths(settings: Settings, state_dir: Path | None = None) -> BiPaths:
    """The endpoint's folder: `state_dir` when given, else <storage root>/bi for a local root, else .run/bi in the
    project (the pid file and the log are local files wherever the tables are)."""
    if state_dir is not None:
        return BiPaths(state_dir)
    root = settings.storage.root
    if "://" in root:
        return BiPaths(PROJECT_DIR / ".run" / "bi")
    base = Path(root) if Path(root).is_absolute() else PROJECT_DIR / root
    return BiPaths(base / "bi")


def served_tables(settings: Settings) -> dict[str, str]:
    """Qualified name -> Delta location of every gold and public table the pipeline defines."""
    from lakehouse.gold.build import GOLD_TABLES
    from lakehouse.public.build import PUBLIC_TABLES

    names = {"gold": GOLD_TABLES, "public": PUBLIC_TABLES}
    result = {}
    for layer in BI_LAYERS:
        database = getattr(settings.databases, layer)
        for name in names[layer]:
            result[f"{database}.{name}"] = f"{database_location(settings, database)}/{name}"
    return result


def bi_conf(settings: Settings, paths: BiPaths, *, guarded: bool) -> dict[str, str]:
    """The Spark settings of the endpoint's catalog: the lakehouse's, with the endpoint's own Derby metastore,
    and with `guarded` the read-only guard and no SQL on files.

    Settings that point the lakehouse at a shared metastore (a Hive metastore service, Glue) are left out: the
    registration drops and re-creates the tables it serves, which in the pipeline's own catalog would be the
    pipeline's managed tables, data and all.
    """
    storage = dataclasses.replace(settings.storage, metastore=str(paths.metastore), metastore_url="")
    own = {k: v for k, v in settings.spark.conf.items() if not names_shared_catalog(k)}
    spark_settings = dataclasses.replace(settings.spark, conf=own)
    conf = session_conf(dataclasses.replace(settings, storage=storage, spark=spark_settings))
    conf["spark.app.name"] = "lakehouse-bi"
    if conf.get("spark.master", "").startswith("spark://"):
        # A standalone master gives an application every free core for as long as it runs: the endpoint would
        # starve the pipeline's jobs. One core unless the environment says otherwise.
        conf.setdefault("spark.cores.max", "1")
    if guarded:
        conf["spark.sql.extensions"] = f"{conf['spark.sql.extensions']},{GUARD_CLASS}"
        conf["spark.sql.runSQLOnFiles"] = "false"
    return conf


@dataclass(frozen=True)
class Catalog:
    """What the registration step writes: the Spark settings of the endpoint's catalog, each served database's
    location and each served table's Delta location (qualified name -> location)."""

    conf: dict[str, str]
    databases: dict[str, str]
    tables: dict[str, str]

    def to_json(self) -> str:
        return json.dumps({"conf": self.conf, "databases": self.databases, "tables": self.tables})

    @classmethod
    def from_json(cls, text: str) -> Catalog:
        data = json.loads(text)
        return cls(conf=dict(data["conf"]), databases=dict(data["databases"]), tables=dict(data["tables"]))


def catalog(settings: Settings, paths: BiPaths) -> Catalog:
    """The endpoint's catalog for `settings`: its own metastore, the gold and public databases and tables."""
    databases = [getattr(settings.databases, layer) for layer in BI_LAYERS]
    return Catalog(
        conf=bi_conf(settings, paths, guarded=False),
        databases={database: database_location(settings, database) for database in databases},
        tables=served_tables(settings),
    )


def register(spec: Catalog) -> list[str]:
    """Write the endpoint's catalog (in a process of its own, which releases the Derby metastore when it
    exits; see the module docstring). Returns the tables registered; a defined table whose files do not
    exist yet is skipped with a warning."""
    from pyspark.sql import SparkSession

    builder = SparkSession.builder
    for key, value in spec.conf.items():
        builder = builder.config(key, value)
    spark = builder.enableHiveSupport().getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    registered = []
    try:
        for database, location in spec.databases.items():
            spark.sql(f"CREATE DATABASE IF NOT EXISTS {database} LOCATION '{location}'")
        for table, location in spec.tables.items():
            _refuse_managed(spark, table)
            spark.sql(f"DROP TABLE IF EXISTS {table}")
            if not _delta_table_exists(spark, location):
                logger.warning("%s: no Delta table at %s yet (run the pipeline); not served", table, location)
                continue
            spark.sql(f"CREATE TABLE {table} USING DELTA LOCATION '{location}'")
            registered.append(table)
    finally:
        spark.stop()
    return registered


def _refuse_managed(spark: SparkSession, table: str) -> None:
    """Raise BiError if `table` is a managed table: the endpoint registers only external ones (by location), so a
    managed table means the catalog is not the endpoint's own, and dropping it would delete its data."""
    if not spark.catalog.tableExists(table):
        return
    kind = spark.sql(f"DESCRIBE TABLE EXTENDED {table}").where("col_name = 'Type'").select("data_type").first()
    if kind is not None and str(kind[0]).upper() == "MANAGED":
        raise BiError(
            f"{table} is a managed table in the catalog the endpoint registers into: that catalog is not the "
            "endpoint's own, and re-registering would delete the table's data; nothing was dropped"
        )


def _delta_table_exists(spark: object, location: str) -> bool:
    from delta.tables import DeltaTable

    return bool(DeltaTable.isDeltaTable(spark, location))  # type: ignore[arg-type]


def _spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).resolve().parent


def beeline() -> tuple[Path, dict[str, str]]:
    """Hive's JDBC command-line client as the installed pyspark ships it, and the environment it runs in."""
    return _spark_home() / "bin" / "beeline", dict(os.environ, SPARK_HOME=str(_spark_home()))


def server_command(settings: Settings, paths: BiPaths, host: str, port: int) -> list[str]:
    """The spark-submit command line of the Thrift server."""
    conf = bi_conf(settings, paths, guarded=True)
    command = [str(_spark_home() / "bin" / "spark-submit"), "--class", SERVER_CLASS, "--name", "lakehouse-bi"]
    # On the driver's class path too: the server opens each JDBC session's catalog (Delta's) from the JVM's
    # own class loader, which does not see spark.jars. --driver-class-path is spark.driver.extraClassPath, so
    # the entries already in that setting (the S3A jars) join it instead of replacing it.
    class_path = [conf["spark.jars"].replace(",", os.pathsep)]
    extra = conf.pop("spark.driver.extraClassPath", "")
    if extra:
        class_path.append(extra)
    command += ["--driver-class-path", os.pathsep.join(class_path)]
    for key, value in conf.items():
        command += ["--conf", f"{key}={value}"]
    command += [
        "spark-internal",
        "--hiveconf",
        f"hive.server2.thrift.bind.host={host}",
        "--hiveconf",
        f"hive.server2.thrift.port={port}",
    ]
    return command


def _port_open(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        return probe.connect_ex((host, port)) == 0


def _alive(pid: int) -> bool:
    """True while `pid` runs. A server started by this very process (a test) is reaped when it has exited, and
    a zombie counts as exited."""
    with contextlib.suppress(ChildProcessError):  # not our child: its parent (init, after serve-bi) reaps it
        os.waitpid(pid, os.WNOHANG)
    stat = Path(f"/proc/{pid}/stat")
    try:
        if stat.is_file() and stat.read_text().rsplit(")", 1)[-1].split()[0] == "Z":
            return False
    except OSError:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _is_server(pid: int) -> bool:
    """True when `pid` is alive and is a Thrift server (not a later process that got the same pid)."""
    cmdline = Path(f"/proc/{pid}/cmdline")
    if cmdline.is_file():
        return SERVER_CLASS in cmdline.read_bytes().decode("utf-8", "replace")
    return _alive(pid)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (for tests and benchmarks that start their own endpoint)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def read_state(settings: Settings) -> dict[str, object] | None:
    """The running endpoint's pid, host, port and log, or None when none is recorded."""
    state = bi_paths(settings).state
    return dict(json.loads(state.read_text())) if state.is_file() else None


def serve(
    settings: Settings, *, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, timeout_s: float = 180
) -> dict[str, object]:
    """Register the catalog, start the Thrift server in the background and wait until it accepts connections.
    Returns the recorded state. Raises BiError when one is already running, the port is taken, or the server
    does not come up (the message quotes its log)."""
    paths = bi_paths(settings)
    running = read_state(settings)
    if running is not None and _is_server(int(str(running["pid"]))):
        raise BiError(
            f"a BI endpoint is already running (pid {running['pid']}, {running['host']}:{running['port']}); "
            "stop it first with `lakehouse stop-bi`"
        )
    if _port_open(host, port):
        raise BiError(f"{host}:{port} is already in use; choose another with --port")
    environment = dict(os.environ, SPARK_LOCAL_IP=host, SPARK_HOME=str(_spark_home()))
    started = time.perf_counter()
    tables = _register_catalog(settings, paths, environment)
    with paths.log.open("w") as log:
        server = subprocess.Popen(
            server_command(settings, paths, host, port),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=environment,
            start_new_session=True,  # survives the command that started it; stop-bi ends it
        )
    state: dict[str, object] = {
        "pid": server.pid,
        "host": host,
        "port": port,
        "log": str(paths.log),
        "jdbc_url": f"jdbc:hive2://{host}:{port}/{settings.databases.gold}",
        "tables": tables,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    paths.state.write_text(json.dumps(state, indent=2) + "\n")
    deadline = time.monotonic() + timeout_s
    while not _port_open(host, port):
        if server.poll() is not None:
            paths.state.unlink(missing_ok=True)
            raise BiError(f"the Thrift server exited with code {server.returncode}:\n{_tail(paths.log.read_text())}")
        if time.monotonic() > deadline:
            stop(settings)
            raise BiError(
                f"the Thrift server did not listen on {host}:{port} within {timeout_s:.0f} s; log:\n"
                f"{_tail(paths.log.read_text())}"
            )
        time.sleep(1.0)
    logger.info("BI endpoint up in %.1f s: %s", time.perf_counter() - started, state["jdbc_url"])
    return state


def _register_catalog(settings: Settings, paths: BiPaths, environment: dict[str, str]) -> list[str]:
    """Write the endpoint's catalog in `paths` (`register`, in a process of its own); the tables it serves."""
    paths.metastore.mkdir(parents=True, exist_ok=True)
    registration = subprocess.run(
        [sys.executable, "-m", "lakehouse.bi", "register"],
        input=catalog(settings, paths).to_json(),
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )
    if registration.returncode != 0:
        raise BiError(f"registering the gold and public tables failed:\n{_tail(registration.stderr)}")
    tables = [line for line in registration.stdout.splitlines() if line.strip()]
    if not tables:
        raise BiError("no gold or public table exists yet: run the pipeline first (`make run`)")
    return tables


def serve_foreground(
    settings: Settings, *, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, state_dir: Path | None = None
) -> NoReturn:
    """Register the catalog, then become the Thrift server (exec): the main process of a container or a service
    manager, which stops it with a signal. No state file is written; the catalog is in `state_dir` (default as
    `serve`), rebuilt at every start."""
    paths = bi_paths(settings, state_dir)
    if _port_open(host, port):
        raise BiError(f"{host}:{port} is already in use; choose another with --port")
    environment = dict(os.environ, SPARK_LOCAL_IP=host, SPARK_HOME=str(_spark_home()))
    tables = _register_catalog(settings, paths, environment)
    logger.info("serving %d tables on %s:%d: %s", len(tables), host, port, ", ".join(tables))
    command = server_command(settings, paths, host, port)
    os.execvpe(command[0], command, environment)


def stop(settings: Settings, *, timeout_s: float = 30) -> int | None:
    """Stop the recorded Thrift server (SIGTERM, then SIGKILL after `timeout_s`) and wait until it has exited;
    returns its pid, or None when none was recorded or it had already exited."""
    paths = bi_paths(settings)
    state = read_state(settings)
    if state is None:
        return None
    pid = int(str(state["pid"]))
    if not _is_server(pid):
        paths.state.unlink(missing_ok=True)
        return None
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.5)
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)
        while _alive(pid):  # SIGKILL cannot be refused, but the kernel takes a moment to end a big JVM
            time.sleep(0.1)
    paths.state.unlink(missing_ok=True)
    return pid


def _tail(text: str, lines: int = 30) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m lakehouse.bi register < catalog.json`: the registration step of serve-bi, in its own process
    (the catalog, `Catalog.to_json`, on standard input). Prints each registered table on a line of its own."""
    parser = argparse.ArgumentParser(prog="python -m lakehouse.bi")
    parser.add_argument("step", choices=["register"])
    parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    for table in register(Catalog.from_json(sys.stdin.read())):
        print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
