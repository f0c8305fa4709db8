#!/usr/bin/env bash
# Compiles the lakehouse's own JVM classes (infra/jvm/src) into <jars-dir>/lakehouse-jvm.jar, against
# the jars of the installed pyspark: the classes they use (Spark's UDF interfaces, Commons Text) are there,
# so nothing is downloaded. The session builder passes every jar of <jars-dir> to spark.jars.
# Usage: infra/jvm/build.sh <python> <jars-dir>
set -euo pipefail
python=$1
jars_dir=$2
here=$(cd "$(dirname "$0")" && pwd)
spark_jars=$("$python" -c 'import os, pyspark; print(os.path.join(os.path.dirname(pyspark.__file__), "jars"))')
classes=$(mktemp -d)
trap 'rm -rf "$classes"' EXIT
find "$here/src" -name '*.java' -print0 | xargs -0 javac --release 17 -Xlint:all,-path -Werror -cp "$spark_jars/*" -d "$classes"
mkdir -p "$jars_dir"
jar --create --file "$jars_dir/lakehouse-jvm.jar" -C "$classes" .
echo "built $jars_dir/lakehouse-jvm.jar"
