#!/usr/bin/env bash
# Entry point of the lakehouse image (infra/docker/Dockerfile).
#
#   driver ARGS...   a driver pod of Spark on Kubernetes: spark-submit in client mode inside the pod, with the
#                    arguments Spark gives the pod (--properties-file, --class, the application and its arguments)
#   executor         an executor pod of Spark on Kubernetes: the executor backend, configured by the SPARK_*
#                    variables Spark sets on the pod
#   anything else    run as given: lakehouse, spark-submit, spark-class, mlflow, python, bash ...
set -euo pipefail

case "${1:-}" in
  driver)
    shift
    exec "$SPARK_HOME/bin/spark-submit" \
      --deploy-mode client \
      --conf "spark.driver.bindAddress=${SPARK_DRIVER_BIND_ADDRESS:?Spark on Kubernetes sets it to the pod address}" \
      --conf "spark.executorEnv.SPARK_DRIVER_POD_IP=${SPARK_DRIVER_BIND_ADDRESS}" \
      "$@"
    ;;
  executor)
    shift
    # Spark passes the executor's JVM options one per variable, SPARK_JAVA_OPT_0, _1, ..., in that order.
    java_options=()
    while IFS= read -r name; do
      java_options+=("${!name}")
    done < <(compgen -e | grep '^SPARK_JAVA_OPT_[0-9]*$' | sort -t_ -k4 -n)
    class_path="$SPARK_HOME/jars/*"
    if [ -n "${SPARK_CLASSPATH:-}" ]; then class_path="$SPARK_CLASSPATH:$class_path"; fi
    if [ -n "${SPARK_CONF_DIR:-}" ]; then class_path="$SPARK_CONF_DIR:$class_path"; fi
    if [ -n "${HADOOP_CONF_DIR:-}" ]; then class_path="$HADOOP_CONF_DIR:$class_path"; fi
    exec "$JAVA_HOME/bin/java" "${java_options[@]}" \
      -Xms"$SPARK_EXECUTOR_MEMORY" -Xmx"$SPARK_EXECUTOR_MEMORY" \
      -cp "$class_path" \
      org.apache.spark.scheduler.cluster.k8s.KubernetesExecutorBackend \
      --driver-url "$SPARK_DRIVER_URL" \
      --executor-id "$SPARK_EXECUTOR_ID" \
      --cores "$SPARK_EXECUTOR_CORES" \
      --app-id "$SPARK_APPLICATION_ID" \
      --hostname "$SPARK_EXECUTOR_POD_IP" \
      --resourceProfileId "$SPARK_RESOURCE_PROFILE_ID" \
      --podName "$SPARK_EXECUTOR_POD_NAME"
    ;;
  "")
    exec lakehouse --help
    ;;
  *)
    exec "$@"
    ;;
esac
