"""The whole pipeline as named stages: bronze, silver, link, gold, public.

Each stage reads what the one before it wrote and writes its own tables, so any stage can be re-run
on its own (`lakehouse run --stages gold,public`). Every stage run is logged with its rows and time
and recorded in `ops.pipeline_runs`.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pyspark.sql import SparkSession
from pyspark.sql import types as T

from lakehouse.config import Settings
from lakehouse.progress import DEFAULT_SECONDS as DEFAULT_PROGRESS_SECONDS
from lakehouse.progress import stage_progress
from lakehouse.tables import (
    enable_change_data_feed,
    run_tag,
    table_exists,
    table_versions,
    tagged_commits,
    with_retries,
    write_table,
)

logger = logging.getLogger(__name__)

STAGES: tuple[str, ...] = ("bronze", "silver", "link", "gold", "public")


CHANGE_FEED_STAGES = {"silver": "silver", "link": "mpi"}
"""Stage -> the layer whose tables keep Delta's Change Data Feed (what changed between versions, row by row)."""


class PipelineError(RuntimeError):
    """A stage could not do its work; the message says which stage and why."""


@dataclass(frozen=True)
class StageResult:
    stage: str
    seconds: float
    figures: dict[str, Any]
    status: str = "succeeded"


@dataclass
class PipelineResult:
    run_id: str
    stages: list[StageResult] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return sum(s.seconds for s in self.stages)


def new_run_id() -> str:
    """Sortable, unique run id: UTC time plus a short random suffix."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"


def _bronze(spark: SparkSession, settings: Settings, run_id: str) -> dict[str, Any]:
    from lakehouse.bronze import ingest_landing

    results = ingest_landing(spark, settings)
    rejected = [r for r in results if r.status == "rejected"]
    for r in rejected:
        logger.error("delivery %s/%s/%s rejected: %s", r.partner, r.feed, r.delivery_id, r.reason)
    figures = {
        "deliveries": [f"{r.partner}/{r.feed}/{r.delivery_id}: {r.status}" for r in results],
        "deliveries_ingested": sum(r.status == "ingested" for r in results),
        "deliveries_skipped": sum(r.status == "skipped" for r in results),
        "deliveries_rejected": len(rejected),
        "rows_in_files": sum(r.rows_in_files for r in results if r.status == "ingested"),
        "rows_bronze": sum(r.rows_bronze for r in results if r.status == "ingested"),
        "rows_quarantined": sum(r.rows_quarantined for r in results if r.status == "ingested"),
    }
    if rejected:
        names = ", ".join(f"{r.partner}/{r.feed}/{r.delivery_id}" for r in rejected)
        raise PipelineError(f"bronze: {len(rejected)} delivery(ies) rejected ({names}); see ops.deliveries")
    return figures


def _silver(spark: SparkSession, settings: Settings, run_id: str) -> dict[str, Any]:
    from lakehouse.silver import build_silver

    result = build_silver(spark, settings, run_id)
    return {
        "rows": dict(result.rows),
        "rows_quarantined": dict(result.rows_quarantined),
        "expectations": {
            f"{e.partner}/{e.feed}/{e.expectation.name}": f"{e.outcome} ({e.rows_violating} of {e.rows_checked})"
            for e in result.expectations
        },
    }


def _link(spark: SparkSession, settings: Settings, run_id: str) -> dict[str, Any]:
    from lakehouse.er import evaluate, link

    result = link(spark, settings, run_id)
    figures: dict[str, Any] = {
        "engine": result.engine,
        "records": result.n_records,
        "candidate_pairs": result.n_candidate_pairs,
        "pairs": result.n_pairs,
        "persons": result.n_persons,
        "capped_blocks": result.n_capped_blocks,
        "iterations": result.iterations,
        "largest_cluster": result.largest_cluster,
        "clusters_split": result.n_clusters_split,
        "mode": result.mode,
    }
    if result.n_affected_records is not None:
        figures["affected_records"] = result.n_affected_records
    if settings.matching is not None and settings.matching.evaluate:
        metrics = evaluate(spark, settings, run_id)
        if metrics is not None:
            figures.update(precision=metrics.precision, recall=metrics.recall, f1=metrics.f1)
            if result.mlflow_run_id is not None:
                from lakehouse.er.registry import ModelRegistry

                ModelRegistry(settings).log_figures(result.mlflow_run_id, metrics.mlflow_figures())
    if result.model_version is not None:
        figures["model"] = f"{result.model_name}/{result.model_version}"
    return figures


def _gold(spark: SparkSession, settings: Settings, run_id: str) -> dict[str, Any]:
    from lakehouse.gold import build_gold

    return {"rows": build_gold(spark, settings)}


def _public(spark: SparkSession, settings: Settings, run_id: str) -> dict[str, Any]:
    from lakehouse.public import build_public

    return {"rows": build_public(spark, settings)}


STAGE_FUNCTIONS: dict[str, Callable[[SparkSession, Settings, str], dict[str, Any]]] = {
    "bronze": _bronze,
    "silver": _silver,
    "link": _link,
    "gold": _gold,
    "public": _public,
}


def parse_stages(text: str | None) -> list[str]:
    """'silver,link' -> ['silver', 'link'] in pipeline order; None or 'all' -> every stage."""
    if not text or text == "all":
        return list(STAGES)
    wanted = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in wanted if s not in STAGES]
    if unknown:
        raise ValueError(f"unknown stage(s) {', '.join(unknown)}; stages are {', '.join(STAGES)}")
    return [s for s in STAGES if s in wanted]


_RUNS_SCHEMA = T.StructType(
    [
        T.StructField("run_id", T.StringType(), False),
        T.StructField("stage", T.StringType(), False),
        T.StructField("status", T.StringType(), False),
        T.StructField("started_at", T.TimestampType(), False),
        T.StructField("seconds", T.DoubleType(), False),
        T.StructField("figures", T.StringType(), True),
        T.StructField("error", T.StringType(), True),
        T.StructField("user", T.StringType(), True),
        T.StructField("host", T.StringType(), True),
        T.StructField("command", T.StringType(), True),
        T.StructField("env", T.StringType(), True),
        T.StructField("code_version", T.StringType(), True),
        T.StructField("deliveries", T.ArrayType(T.StringType()), True),
        T.StructField("tables_read", T.MapType(T.StringType(), T.LongType()), True),
        T.StructField("tables_written", T.MapType(T.StringType(), T.LongType()), True),
    ]
)
"""ops.pipeline_runs, the audit of every run: one row per stage. Columns after `error` were added later; an
older table gains them on its next append."""
RUNS_COMMENT = (
    "Audit of every pipeline run, one row per stage: who (user, host), what (command, env, code_version), when "
    "(started_at, seconds), the deliveries bronze handled (partner/feed/delivery: status), the Delta version of "
    "every table the stage read (the versions of its input layers when it started) and wrote (new versions), "
    "its figures (row counts, expectation outcomes) and its outcome (status, error)."
)
STAGE_READS = {
    "bronze": (),
    "silver": ("bronze",),
    "link": ("silver", "mpi"),
    "gold": ("silver", "mpi"),
    "public": ("gold",),
}
"""Layers each stage reads (bronze reads landing, recorded as its deliveries)."""


def git_commit() -> str:
    """The commit of the checkout the code runs from, "" when it is not one (an installed wheel)."""
    import subprocess
    from pathlib import Path

    checkout = Path(__file__).resolve().parent.parent
    if not (checkout / ".git").exists():
        return ""
    done = subprocess.run(
        ["git", "-C", str(checkout), "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True, check=False
    )
    return done.stdout.strip() if done.returncode == 0 else ""


def _who_and_what(settings: Settings) -> tuple[str, str, str, str, str]:
    import getpass
    import socket
    import sys
    from importlib.metadata import PackageNotFoundError, version

    try:
        code = f"lakehouse {version('lakehouse')}"
    except PackageNotFoundError:  # pragma: no cover - only when run from an uninstalled checkout
        code = "unknown"
    commit = git_commit()
    if commit:
        code += f" ({commit})"
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # pragma: no cover - a container user without a passwd entry
        user = "unknown"
    return user, socket.gethostname(), " ".join(sys.argv), settings.env, code


def record_stage(
    spark: SparkSession,
    settings: Settings,
    *,
    run_id: str,
    stage: str,
    status: str,
    started_at: datetime,
    seconds: float,
    figures: dict[str, Any] | None,
    error: str | None = None,
    tables_read: dict[str, int] | None = None,
    tables_written: dict[str, int] | None = None,
    who: tuple[str, str, str, str, str],
) -> None:
    """Append one row to ops.pipeline_runs (one row per stage per run); `who` is `_who_and_what`, taken once
    per run."""
    deliveries = (figures or {}).get("deliveries")
    row = (
        run_id,
        stage,
        status,
        started_at,
        seconds,
        json.dumps(figures, default=str),
        error,
        *who,
        list(deliveries) if deliveries is not None else None,
        tables_read,
        tables_written,
    )
    table = settings.table("ops", "pipeline_runs")
    with_retries(
        lambda: write_table(
            spark.createDataFrame([row], _RUNS_SCHEMA),
            table,
            mode="append",
            merge_schema=True,
            comment=None if table_exists(spark, table) else RUNS_COMMENT,
        ),
        f"{table} (run {run_id} stage {stage})",
    )


def run_pipeline(
    spark: SparkSession,
    settings: Settings,
    stages: Sequence[str] = STAGES,
    run_id: str | None = None,
    progress_seconds: float = DEFAULT_PROGRESS_SECONDS,
) -> PipelineResult:
    """Run `stages` in order; stop at the first failure (recorded, then re-raised).

    While a stage runs, a progress line every `progress_seconds` gives its elapsed time and the rows Spark has
    read and written for it so far (lakehouse.progress); the stage's last line gives its totals.

    Every Delta commit a stage makes carries `run <run_id> stage <stage>` as its userMetadata (DESCRIBE HISTORY
    and `lakehouse history` show it). Each stage's row in ops.pipeline_runs records the versions of the tables
    it read and wrote: every table's latest Delta version is taken before and after the stage (from the tables'
    logs, one listing per layer).
    """
    result = PipelineResult(run_id=run_id or new_run_id())
    logger.info("pipeline run %s: stages %s", result.run_id, ", ".join(stages))
    layers = list(settings.databases.all())
    who = _who_and_what(settings)
    for stage in stages:
        started_at, start = datetime.now(UTC), time.perf_counter()
        logger.info("stage %s: started", stage)
        before = table_versions(spark, settings, layers)
        figures: dict[str, Any] | None = None
        error: Exception | None = None
        try:
            with (
                tagged_commits(spark, run_tag(result.run_id, stage)),
                stage_progress(spark, f"stage {stage}", progress_seconds) as progress,
            ):
                figures = STAGE_FUNCTIONS[stage](spark, settings, result.run_id)
                if stage in CHANGE_FEED_STAGES:
                    enable_change_data_feed(spark, getattr(settings.databases, CHANGE_FEED_STAGES[stage]))
                rows = progress.figures()
        except Exception as exc:
            error = exc
        seconds = time.perf_counter() - start
        after = table_versions(spark, settings, layers)
        read_databases = {getattr(settings.databases, layer) for layer in STAGE_READS[stage]}
        record_stage(
            spark,
            settings,
            run_id=result.run_id,
            stage=stage,
            status="failed" if error else "succeeded",
            started_at=started_at,
            seconds=seconds,
            figures=figures,
            error=str(error) if error else None,
            tables_read={t: v for t, v in before.items() if t.split(".")[0] in read_databases},
            tables_written={t: v for t, v in after.items() if before.get(t) != v},
            who=who,
        )
        if error is not None:
            logger.error("stage %s: failed after %.1f s: %s", stage, seconds, error)
            raise error
        assert figures is not None
        logger.info(
            "stage %s: done in %.1f s, %s rows read and %s written: %s",
            stage,
            seconds,
            f"{rows.rows_read:,}",
            f"{rows.rows_written:,}",
            json.dumps(figures, default=str),
        )
        result.stages.append(StageResult(stage=stage, seconds=seconds, figures=figures))
    return result
