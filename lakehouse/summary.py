"""What the lakehouse holds: every table of every layer with its rows, version, last update and location, and the
last pipeline runs with their outcome."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from lakehouse.config import Settings

ZONES = {
    "bronze": "restricted",
    "quarantine": "restricted",
    "silver": "restricted",
    "mpi": "restricted",
    "ops": "restricted",
    "gold": "research",
    "public": "public",
}


@dataclass(frozen=True)
class TableInfo:
    layer: str
    zone: str
    name: str
    rows: int
    version: int
    updated: str
    """When the table's latest version was committed (UTC, to the second)."""
    location: str
    comment: str


@dataclass(frozen=True)
class RunInfo:
    """One pipeline run as ops.pipeline_runs records it: its stages in the order they ran."""

    run_id: str
    started: str
    stages: list[tuple[str, str, float]]
    """(stage, status, seconds) per stage."""
    error: str

    @property
    def outcome(self) -> str:
        return "failed" if any(status != "succeeded" for _, status, _ in self.stages) else "succeeded"


def list_tables(spark: SparkSession, settings: Settings) -> list[TableInfo]:
    """One entry per Delta table in the layer databases, in layer order (counts every table: small sizes only)."""
    infos = []
    for layer, database in settings.databases.all().items():
        if not spark.catalog.databaseExists(database):
            continue
        for table in sorted(t.name for t in spark.catalog.listTables(database)):
            name = f"{database}.{table}"
            detail = spark.sql(f"DESCRIBE DETAIL {name}").first()
            history = spark.sql(f"DESCRIBE HISTORY {name} LIMIT 1").first()
            infos.append(
                TableInfo(
                    layer=layer,
                    zone=ZONES.get(layer, "restricted"),
                    name=name,
                    rows=spark.table(name).count(),
                    version=int(history["version"]) if history else 0,
                    updated=history["timestamp"].strftime("%Y-%m-%d %H:%M:%S") if history else "",
                    location=str(detail["location"]) if detail else "",
                    comment=str(detail["description"] or "") if detail else "",
                )
            )
    return infos


def latest_linkage_metrics(spark: SparkSession, settings: Settings) -> dict[str, Any] | None:
    table = settings.table("mpi", "linkage_metrics")
    if not spark.catalog.tableExists(table):
        return None
    row = spark.table(table).orderBy(F.col("evaluated_at").desc()).first()
    return row.asDict() if row else None


def last_runs(spark: SparkSession, settings: Settings, limit: int = 5) -> list[RunInfo]:
    """The `limit` latest pipeline runs (by their first stage's start), newest first."""
    table = settings.table("ops", "pipeline_runs")
    if not spark.catalog.tableExists(table):
        return []
    rows = (
        spark.table(table)
        .groupBy("run_id")
        .agg(
            F.min("started_at").alias("started"),
            F.sort_array(F.collect_list(F.struct("started_at", "stage", "status", "seconds", "error"))).alias("stages"),
        )
        .orderBy(F.col("started").desc())
        .limit(limit)
        .collect()
    )
    return [
        RunInfo(
            run_id=row["run_id"],
            started=row["started"].strftime("%Y-%m-%d %H:%M:%S"),
            stages=[(s["stage"], s["status"], float(s["seconds"])) for s in row["stages"]],
            error=next((s["error"] for s in row["stages"] if s["error"]), ""),
        )
        for row in rows
    ]


def render(spark: SparkSession, settings: Settings) -> str:
    """The text `lakehouse status` (and `make run`) prints: tables, the last runs, linkage figures and how to open
    the tables."""
    infos = list_tables(spark, settings)
    lines = [f"Lakehouse at {settings.storage.root} (environment '{settings.env}')", ""]
    width = max((len(i.name) for i in infos), default=20)
    lines.append(f"{'zone':<10} {'table':<{width}} {'rows':>12} {'ver':>4}  {'updated (UTC)':<19}  location")
    for info in infos:
        lines.append(
            f"{info.zone:<10} {info.name:<{width}} {info.rows:>12,} {info.version:>4}  {info.updated:<19}  "
            f"{info.location}"
        )
    runs = last_runs(spark, settings)
    lines += ["", "Last runs (newest first):" if runs else "Runs: none recorded yet."]
    for run in runs:
        stages = ", ".join(f"{stage} {status} {seconds:.0f} s" for stage, status, seconds in run.stages)
        lines.append(f"  {run.started}  run {run.run_id}  {run.outcome:<9}  {stages}")
        if run.error:
            lines.append(f"      error: {run.error[:300]}")
    metrics = latest_linkage_metrics(spark, settings)
    lines.append("")
    if metrics:
        figures = {k: "n/a" if metrics.get(k) is None else f"{metrics[k]:.4f}" for k in ("precision", "recall", "f1")}
        lines.append(
            f"Linkage ({metrics['model']}, run {metrics['run_id']}): {metrics['n_records']:,} records -> "
            f"{metrics['n_persons']:,} persons; pairwise precision {figures['precision']}, recall "
            f"{figures['recall']}, F1 {figures['f1']} against the generator's ground truth"
        )
    else:
        lines.append("Linkage: no evaluation recorded (no ground truth).")
    warehouse = settings.storage.path("warehouse")
    lines += [
        "",
        "Open the tables:",
        '  Spark SQL:  .venv/bin/lakehouse sql "SELECT * FROM public.student_pathways LIMIT 20"',
        "  Python:     from lakehouse.notebook import session; spark = session(); spark.table('gold.dim_person')",
        f"  Any Delta reader (e.g. delta-rs, DuckDB's delta extension) can open the folders under {warehouse}",
    ]
    return "\n".join(lines)
