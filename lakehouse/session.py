"""The one place a SparkSession is built: Delta, the local jars, the catalog and local defaults.

Called only from jobs/, the CLI and tests; library functions receive the session or DataFrames.
"""

from __future__ import annotations

import logging
import os
import sys
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


def build_session(settings: Settings, extra_conf: Mapping[str, str] | None = None) -> SparkSession:
    """A SparkSession with Delta and the catalog configured, and every layer's database created."""
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
