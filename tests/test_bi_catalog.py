"""The BI endpoint's catalog is its own: never the lakehouse's shared metastore, whose tables it would drop."""

from __future__ import annotations

import dataclasses

import pytest
from pyspark.sql import SparkSession

from lakehouse.bi import BiError, _refuse_managed, bi_conf, bi_paths
from lakehouse.config import Settings

SHARED = {
    "spark.hadoop.hive.metastore.uris": "thrift://127.0.0.1:9083",
    "spark.hadoop.hive.metastore.client.factory.class": "a.glue.ClientFactory",
    "spark.hadoop.javax.jdo.option.ConnectionURL": "jdbc:postgresql://127.0.0.1:5432/metastore",
    "spark.sql.shuffle.partitions": "3",
}


def test_bi_conf_leaves_out_the_shared_metastore(settings: Settings) -> None:
    shared = dataclasses.replace(settings, spark=dataclasses.replace(settings.spark, conf=SHARED))
    conf = bi_conf(shared, bi_paths(shared), guarded=True)
    assert not any("hive.metastore.uris" in k or "client.factory.class" in k for k in conf), conf
    own = f"jdbc:derby:;databaseName={bi_paths(shared).metastore}/metastore_db;create=true"
    assert conf["spark.hadoop.javax.jdo.option.ConnectionURL"] == own
    assert conf["spark.sql.shuffle.partitions"] == "3"  # the lakehouse's other settings are kept


def test_registration_refuses_to_drop_a_managed_table(spark: SparkSession) -> None:
    spark.sql("CREATE DATABASE IF NOT EXISTS bi_catalog_test")
    spark.range(3).write.format("delta").mode("overwrite").saveAsTable("bi_catalog_test.managed")
    with pytest.raises(BiError, match="managed table"):
        _refuse_managed(spark, "bi_catalog_test.managed")
    assert spark.table("bi_catalog_test.managed").count() == 3
    _refuse_managed(spark, "bi_catalog_test.absent")  # nothing to drop, nothing to refuse
    spark.sql("DROP DATABASE bi_catalog_test CASCADE")
