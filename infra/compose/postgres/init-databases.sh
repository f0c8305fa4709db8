#!/usr/bin/env bash
# Runs once, when PostgreSQL's data volume is new (/docker-entrypoint-initdb.d): a login role and a database for each
# client of the stack, the Hive metastore and the MLflow server. Passwords come from the environment (infra/compose/.env).
set -euo pipefail
psql --no-psqlrc --set ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  --set hive_password="$HIVE_DB_PASSWORD" --set mlflow_password="$MLFLOW_DB_PASSWORD" <<'SQL'
CREATE ROLE hive LOGIN PASSWORD :'hive_password';
CREATE DATABASE metastore OWNER hive;
CREATE ROLE mlflow LOGIN PASSWORD :'mlflow_password';
CREATE DATABASE mlflow OWNER mlflow;
SQL
