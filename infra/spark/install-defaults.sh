#!/usr/bin/env bash
# Writes spark-defaults.conf into the venv's Spark (the pyspark package's SPARK_HOME/conf) so that
# `spark-submit jobs/pipeline.py --env local`, the standalone cluster and the Thrift server all find
# the Delta jars resolved by Maven into .jars/ and the S3A jars in .jars/s3a/, by local path. Nothing is
# downloaded at run time.
# Usage: infra/spark/install-defaults.sh <python> <jars-dir>
set -euo pipefail
python=$1
jars_dir=$(cd "$2" && pwd)
project_dir=$(cd "$(dirname "$0")/../.." && pwd)
spark_home=$("$python" -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))')
jars=$(ls "$jars_dir"/*.jar | paste -sd, -)
mkdir -p "$spark_home/conf"
cat > "$spark_home/conf/spark-defaults.conf" <<CONF
# Written by infra/spark/install-defaults.sh (make setup); do not edit by hand.
spark.jars                       $jars
spark.driver.extraJavaOptions    -Duser.timezone=UTC -Dlog4j2.configurationFile=file:$project_dir/infra/log4j2.properties
spark.executor.extraJavaOptions  -Duser.timezone=UTC
spark.driver.extraClassPath      $jars_dir/s3a/*
spark.executor.extraClassPath    $jars_dir/s3a/*
spark.sql.session.timeZone       UTC
CONF
echo "spark-defaults.conf written to $spark_home/conf (jars from $jars_dir)"
