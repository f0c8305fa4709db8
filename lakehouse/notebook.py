"""One way into the lakehouse from a notebook or a Python shell."""

from __future__ import annotations

from pyspark.sql import SparkSession

from lakehouse.config import load_settings
from lakehouse.session import build_session


def session(env: str = "local") -> SparkSession:
    """The lakehouse's SparkSession for `env` (conf/env/<env>.yaml), with every layer's database in its catalog."""
    return build_session(load_settings(env=env))
