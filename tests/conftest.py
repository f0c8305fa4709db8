"""One Spark session for the whole run (JVM start-up is slow), on a temporary storage root."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from lakehouse.config import DatabaseSettings, Settings, load_settings
from lakehouse.session import build_session

TEST_HMAC_KEY = "test-only-hmac-key-not-a-secret"


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
