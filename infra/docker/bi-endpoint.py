#!/usr/bin/env python3
"""The BI endpoint as a container's main process: `bi-endpoint --env compose [--port 10000]`.

`lakehouse serve-bi` (lakehouse/bi.py) starts the Thrift server in the background and records its pid next to the
project, which suits a workstation. In a container the server must be the main process, and the installed package's
folder is read-only. This takes the same two steps in the foreground: it registers the gold and public tables in the
endpoint's own catalog (a Derby metastore in --state-dir, rebuilt at every start), then becomes the Thrift server with
the read-only guard. Tables that appear in gold or public later are served after a restart of the service.

The endpoint's catalog is always its own, even when the environment names a shared metastore (spark.conf
...hive.metastore.uris): registering drops and re-creates every served table, which in the shared catalog would drop
the pipeline's managed tables, and the restricted databases must stay out of the endpoint's sight.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import subprocess
import sys
from pathlib import Path

from lakehouse.bi import BI_LAYERS, BiPaths, Catalog, bi_conf, served_tables, server_command
from lakehouse.config import Settings, load_settings
from lakehouse.session import database_location

logger = logging.getLogger("bi-endpoint")

SHARED_CATALOG_KEYS = ("hive.metastore.uris", "hive.metastore.client.factory.class")
"""spark.conf keys that point a session at a shared catalog; the endpoint drops them."""


def own_catalog(settings: Settings, cores_max: int) -> Settings:
    """`settings` without a shared catalog, and with at most `cores_max` cores of a cluster (0: no cap)."""
    conf = {k: v for k, v in settings.spark.conf.items() if not k.endswith(SHARED_CATALOG_KEYS)}
    if cores_max > 0:
        conf["spark.cores.max"] = str(cores_max)  # a standalone cluster gives a long-running application every core
    return dataclasses.replace(settings, spark=dataclasses.replace(settings.spark, conf=conf))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bi-endpoint", description=__doc__.splitlines()[0])
    parser.add_argument("--env", required=True, help="environment overlay conf/env/<env>.yaml")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=10000, help="port (default: 10000)")
    parser.add_argument("--state-dir", type=Path, default=Path("/tmp/lakehouse-bi"), help="the endpoint's catalog")
    parser.add_argument("--cores-max", type=int, default=1, help="cores the server may hold on a cluster (0: all)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    settings = own_catalog(load_settings(args.env), args.cores_max)
    paths = BiPaths(args.state_dir)
    paths.metastore.mkdir(parents=True, exist_ok=True)
    databases = [getattr(settings.databases, layer) for layer in BI_LAYERS]
    catalog = Catalog(
        conf=bi_conf(settings, paths, guarded=False),
        databases={database: database_location(settings, database) for database in databases},
        tables=served_tables(settings),
    )
    environment = dict(os.environ, SPARK_LOCAL_IP=args.host)
    registration = subprocess.run(
        [sys.executable, "-m", "lakehouse.bi", "register"],
        input=catalog.to_json(),
        stdout=subprocess.PIPE,
        env=environment,
        text=True,
        check=False,
    )
    if registration.returncode != 0:
        logger.error("registering the gold and public tables failed (exit code %d)", registration.returncode)
        return 1
    tables = registration.stdout.split()
    if tables:
        logger.info("serving %d tables: %s", len(tables), ", ".join(tables))
    else:
        logger.warning("no gold or public table exists yet: run the pipeline, then restart this service")
    command = server_command(settings, paths, args.host, args.port)
    logger.info("Thrift server on %s:%d", args.host, args.port)
    os.execvpe(command[0], command, environment)
    return 0  # not reached: the server replaces this process


if __name__ == "__main__":
    sys.exit(main())
