"""The one place a SparkSession is built: Delta, the local jars, the catalog and local defaults.

Called only from jobs/, the CLI and tests; library functions receive the session or DataFrames.
"""

from __future__ import annotations

import atexit
import importlib
import logging
import os
import shutil
import sys
import tempfile
import zipfile
from collections.abc import Mapping
from pathlib import Path

from pyspark.errors import AnalysisException
from pyspark.sql import SparkSession

from lakehouse.config import ConfigError, S3Settings, Settings

logger = logging.getLogger(__name__)

ENV_JARS_DIR = "LAKEHOUSE_JARS_DIR"
PROJECT_DIR = Path(__file__).resolve().parent.parent
LOG4J_CONF = PROJECT_DIR / "infra" / "log4j2.properties"


PROJECT_JAR = "lakehouse-jvm.jar"
"""The lakehouse's own JVM classes (infra/jvm/src), built by `make jars` next to Delta's jars."""


def jars_dir() -> Path:
    """Folder of the JVM jars resolved by `make jars` (infra/jvm/pom.xml), or $LAKEHOUSE_JARS_DIR."""
    override = os.environ.get(ENV_JARS_DIR)
    return Path(override) if override else PROJECT_DIR / ".jars"


def local_jars() -> list[str]:
    """Absolute paths of the resolved jars; refuses to go on without Delta's or the lakehouse's own."""
    folder = jars_dir()
    jars = sorted(str(p) for p in folder.glob("*.jar"))
    if not any(Path(j).name.startswith("delta-spark") for j in jars):
        raise ConfigError(
            f"{folder}: Delta jars not found; run `make jars` (resolves infra/jvm/pom.xml with Maven) "
            f"or point {ENV_JARS_DIR} at a folder that holds them"
        )
    if not any(Path(j).name == PROJECT_JAR for j in jars):
        raise ConfigError(
            f"{folder}: {PROJECT_JAR} not found; run `make jars` (compiles infra/jvm/src with javac) "
            f"or point {ENV_JARS_DIR} at a folder that holds it"
        )
    return jars


S3A_DIR = "s3a"
"""Sub-folder of the jars folder with hadoop-aws and the AWS SDK modules it needs (infra/jvm/pom.xml, execution s3a)."""


METASTORE_DIR = "metastore"
"""Folder of the jars dir with Derby's network server and client (`make jars`)."""
DERBY_CLIENT_DRIVER = "org.apache.derby.jdbc.ClientDriver"


def s3a_class_path() -> str:
    """Class-path entry of the S3A jars (`<jars>/s3a/*`), or "" when they are not resolved.

    On the class path by local path, as on a real cluster's image: only s3a:// storage needs them, and
    spark.jars would copy them into every application.
    """
    folder = jars_dir() / S3A_DIR
    return f"{folder}/*" if any(folder.glob("hadoop-aws-*.jar")) else ""


AWS_CREDENTIAL_CHAIN = "software.amazon.awssdk.auth.credentials.DefaultCredentialsProvider"
"""The AWS SDK's standard chain: system properties, environment, web identity, profile, container, instance."""


def s3a_conf(s3: S3Settings) -> dict[str, str]:
    """S3A settings for s3a:// locations: the endpoint and region of conf `s3`, credentials from the AWS chain.

    Never a key or secret: S3A asks the chain, so nothing secret is in Spark's conf (or its UI's environment page).
    """
    conf = {
        "spark.hadoop.fs.s3a.aws.credentials.provider": AWS_CREDENTIAL_CHAIN,
        "spark.hadoop.fs.s3a.endpoint.region": s3.region,
        "spark.hadoop.fs.s3a.path.style.access": str(s3.path_style).lower(),
    }
    endpoint = s3.endpoint_url()
    if endpoint:
        conf["spark.hadoop.fs.s3a.endpoint"] = endpoint
        conf["spark.hadoop.fs.s3a.connection.ssl.enabled"] = str(endpoint.startswith("https://")).lower()
    return conf


def under_spark_submit() -> bool:
    """True when spark-submit started this Python driver: then its --master and memory flags rule."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


REDACTION_REGEX = r"(?i)secret|password|token|access[.]?key|credential|hmac"


def session_conf(settings: Settings, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Every Spark setting the builder applies, defaults first, then conf/ values, then `extra`."""
    storage = settings.storage
    metastore = storage.path("metastore")
    java_options = "-Duser.timezone=UTC"
    if LOG4J_CONF.is_file():
        java_options += f" -Dlog4j2.configurationFile=file:{LOG4J_CONF}"
    conf: dict[str, str] = {
        "spark.app.name": settings.spark.app_name,
        "spark.jars": ",".join(local_jars()),
        "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
        "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
        "spark.sql.warehouse.dir": storage.path("warehouse"),
        "spark.sql.shuffle.partitions": str(settings.spark.shuffle_partitions),
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.adaptive.enabled": "true",
        "spark.driver.memory": settings.spark.driver_memory,
        "spark.ui.showConsoleProgress": "false",
        "spark.driver.extraJavaOptions": f"-Dderby.system.home={metastore} {java_options}",
        "spark.executor.extraJavaOptions": java_options,
        "spark.checkpoint.dir": storage.path("checkpoints"),
        # Spark's default plus the names of this project's secrets: a setting whose name matches is shown as
        # *********(redacted) in the UI, the event log and logs (the key itself is never a setting).
        "spark.redaction.regex": REDACTION_REGEX,
    }
    s3a = s3a_class_path()
    if s3a:
        conf["spark.driver.extraClassPath"] = s3a
        conf["spark.executor.extraClassPath"] = s3a
    if storage.metastore_url:
        # Derby's client on the driver's class path, where the metastore client (DataNucleus) loads it
        client = f"{jars_dir() / METASTORE_DIR}/*"
        conf["spark.driver.extraClassPath"] = ":".join(
            p for p in (conf.get("spark.driver.extraClassPath"), client) if p
        )
    if storage.uses_s3():
        conf.update(s3a_conf(settings.s3))
    if settings.spark.enable_hive:
        conf["spark.sql.catalogImplementation"] = "hive"
        if storage.metastore_url:
            conf["spark.hadoop.javax.jdo.option.ConnectionURL"] = storage.metastore_url
            conf["spark.hadoop.javax.jdo.option.ConnectionDriverName"] = DERBY_CLIENT_DRIVER
        elif "://" not in metastore:
            conf["spark.hadoop.javax.jdo.option.ConnectionURL"] = (
                f"jdbc:derby:;databaseName={metastore}/metastore_db;create=true"
            )
    if settings.spark.master and not under_spark_submit():
        conf["spark.master"] = settings.spark.master
    conf.update(settings.spark.conf)
    conf.update(extra or {})
    return conf


def executor_python(settings: Settings) -> str | None:
    """The configured Python of the executors (`spark.executor_python`) as an absolute path; refuses a missing one."""
    configured = settings.spark.executor_python
    if not configured:
        return None
    path = Path(configured) if Path(configured).is_absolute() else PROJECT_DIR / configured
    if not os.access(path, os.X_OK):
        raise ConfigError(
            f"spark.executor_python: {path} is not an executable Python; `make executor-venv` builds the executors' "
            "environment (the dependencies without the project)"
        )
    return str(path)


CODE_ARCHIVE = "lakehouse-code.zip"
"""Name of the archive of the lakehouse package that `ship_code` sends to the executors."""
_shipped: set[str] = set()
"""Application ids whose executors already have the archive (one addPyFile per application)."""


def ship_code(spark: SparkSession) -> None:
    """Zip the lakehouse package this driver runs and put it on every executor's Python path, as a real cluster
    needs (its executors have the dependencies, not the project); then check that they import it from there.

    The archive is built from the driver's own code at every application start, so executors never run other
    code than the driver. It lives in a temporary folder for the life of this process.
    """
    context = spark.sparkContext
    if context.applicationId in _shipped:
        return
    folder = Path(tempfile.mkdtemp(prefix="lakehouse-code-"))
    atexit.register(shutil.rmtree, folder, True)
    archive = folder / CODE_ARCHIVE
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
        for path in sorted((PROJECT_DIR / "lakehouse").rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                zipped.write(path, path.relative_to(PROJECT_DIR))
    context.addPyFile(str(archive))
    _shipped.add(context.applicationId)
    tasks = context.defaultParallelism
    origins = set(
        context.parallelize(range(tasks), tasks)
        .map(lambda _: importlib.import_module("lakehouse").__file__ or "")
        .collect()
    )
    stray = sorted(o for o in origins if CODE_ARCHIVE not in o)
    if stray:
        raise ConfigError(f"executors import lakehouse from {', '.join(stray)}, not from the shipped {CODE_ARCHIVE}")
    logger.info("code shipped: executors import lakehouse from %s", ", ".join(sorted(origins)))


def build_session(settings: Settings, extra_conf: Mapping[str, str] | None = None) -> SparkSession:
    """A SparkSession with Delta and the catalog configured, and every layer's database created."""
    python = executor_python(settings)
    if python:
        os.environ["PYSPARK_PYTHON"] = python  # read once, when the SparkContext starts
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    conf = session_conf(settings, extra_conf)
    for name in ("warehouse", "metastore", "checkpoints"):
        folder = settings.storage.path(name)
        if "://" not in folder:
            Path(folder).mkdir(parents=True, exist_ok=True)
    builder = SparkSession.builder
    for key, value in conf.items():
        builder = builder.config(key, value)
    if settings.spark.enable_hive:
        builder = builder.enableHiveSupport()
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(settings.spark.log_level)
    spark.sparkContext.setCheckpointDir(conf["spark.checkpoint.dir"])
    if settings.spark.ship_code:
        ship_code(spark)
    create_databases(spark, settings)
    logger.info(
        "spark %s session up: master %s, warehouse %s",
        spark.version,
        spark.sparkContext.master,
        conf["spark.sql.warehouse.dir"],
    )
    return spark


def database_location(settings: Settings, database: str) -> str:
    """Where a database's tables live: <warehouse>/<database>.db."""
    return f"{settings.storage.path('warehouse').rstrip('/')}/{database}.db"


def create_databases(spark: SparkSession, settings: Settings) -> None:
    """CREATE DATABASE IF NOT EXISTS for every layer, located under the warehouse folder.

    With a shared metastore another job may create one between the check and the creation: that is no error.
    """
    for database in settings.databases.all().values():
        try:
            spark.sql(f"CREATE DATABASE IF NOT EXISTS {database} LOCATION '{database_location(settings, database)}'")
        except AnalysisException as exc:
            if "already exists" not in str(exc):
                raise
