"""Entity-resolution benchmark harness: our engine against the deterministic baseline and Splink, on the same records.

Runs in the project's .venv and starts no Spark itself; every step that needs Spark or Splink is a subprocess,
one at a time:

1. per size, the data is built once: `lakehouse generate --people N --seed S`, `lakehouse run --stages
   bronze,silver` and `export_records.py` (records plus their true person) into the storage root
   bench/er/work/people-<N>-seed-<S>/, which has its own warehouse and Derby metastore. A stamp file
   (bench-data.json) records the finished steps; a later run skips them;
2. every system runs on records.parquet as a subprocess, `--repeats` times (repeats interleaved across the
   systems), each with a timeout and a memory limit: ours (run_engine.py --engine probabilistic), baseline
   (run_engine.py --engine deterministic), splink-duckdb and splink-spark (splink/run_splink.py in
   .venv-splink; Spark only up to --splink-spark-max-people). A system that fails, times out or exceeds the
   memory limit is recorded as such and not repeated at that size;
3. each clusters.parquet is evaluated against true_person: pairwise precision, recall and F1 counted from group
   sizes (records without a true person left out), and the number of predicted clusters;
4. with --stress, a stressed copy of the records (--stress-share of them, a seeded choice, get one shared
   valid-looking placeholder SSN and the commonest first and last name pair; true_person kept) is run by
   --stress-systems, and the stressed/plain time ratio reported.

Results: bench/er/results/er-bench.json (every run, written after each one) and er-bench.md (one table per size).

    LAKEHOUSE_HMAC_KEY=... .venv/bin/python bench/er/run_bench.py --people 11000,110000 --repeats 3 --stress
"""

from __future__ import annotations

import argparse
import hmac
import json
import logging
import os
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from measure import machine_info, tree_rss_bytes

log = logging.getLogger("run_bench")

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
SYSTEMS = ("ours", "baseline", "splink-duckdb", "splink-spark")
SYSTEM_LABELS = {
    "ours": "ours (probabilistic, Spark)",
    "baseline": "baseline (deterministic rules, Spark)",
    "splink-duckdb": "Splink 5 (DuckDB)",
    "splink-spark": "Splink 5 (Spark)",
}
STRESS_SSN = "111223333"
"""The stressed records' shared SSN: 111-22-3333, the classic form-filler placeholder. Unlike 123456789 or repeated
digits it passes silver's validation (lakehouse.silver.standardize.standardize_ssn), so it reaches linkage as a
token, as such a placeholder does in real extracts."""
DATA_STAMP = "bench-data.json"
CONFIG_KEYS = ("engine", "backend", "threshold", "splink_version", "duckdb_version", "pyspark_version", "spark")
"""Figures of a system's timings.json kept with each run, to say in the report how it was configured."""
STATUS_OK = "ok"


# --------------------------------------------------------------------------------------------------
# Options
# --------------------------------------------------------------------------------------------------


def int_list(text: str) -> list[int]:
    values = [int(v.replace("_", "")) for v in text.split(",") if v.strip()]
    if not values or any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive integers separated by commas, got {text!r}")
    return values


def system_list(text: str) -> list[str]:
    values = [v.strip() for v in text.split(",") if v.strip()]
    unknown = [v for v in values if v not in SYSTEMS]
    if not values or unknown:
        raise argparse.ArgumentTypeError(f"systems must be among {', '.join(SYSTEMS)}, got {text!r}")
    return values


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--people", type=int_list, default=int_list("11000,110000"), help="sizes, in true people")
    parser.add_argument("--seed", type=int, default=7, help="generator seed (also the stress choice's seed)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each system per size")
    parser.add_argument("--systems", type=system_list, default=list(SYSTEMS), help=f"subset of {','.join(SYSTEMS)}")
    parser.add_argument(
        "--splink-spark-max-people", type=int, default=11000, help="splink-spark runs only up to this many people"
    )
    parser.add_argument("--timeout-s", type=float, default=3600, help="time limit of one system run")
    parser.add_argument(
        "--max-memory-gb",
        type=float,
        default=round(0.9 * psutil.virtual_memory().total / 2**30, 1),
        help="a run whose process tree exceeds this resident memory is stopped (default 90%% of RAM; 0: no limit)",
    )
    parser.add_argument(
        "--min-free-disk-gb",
        type=float,
        default=10.0,
        help="a run is stopped when free disk space falls below this (spill files; 0: no limit)",
    )
    parser.add_argument("--stress", action="store_true", help="also run --stress-systems on a stressed copy")
    parser.add_argument("--stress-share", type=float, default=0.05, help="share of records stressed")
    parser.add_argument(
        "--stress-systems", type=system_list, default=["ours", "splink-duckdb"], help="systems run on the stressed copy"
    )
    parser.add_argument("--work", type=Path, default=HERE / "work", help="data and run outputs (git-ignored)")
    parser.add_argument("--results", type=Path, default=HERE / "results", help="er-bench.json and er-bench.md")
    parser.add_argument("--env", default="local", help="conf/env/<env>.yaml for the data build and our engine")
    parser.add_argument("--splink-python", type=Path, default=REPO / ".venv-splink" / "bin" / "python")
    parser.add_argument("--render-only", action="store_true", help="re-render er-bench.md from er-bench.json")
    parser.add_argument(
        "--build-only", action="store_true", help="build each size's records.parquet (not timed) and stop"
    )
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    if not 0 < args.stress_share < 1:
        parser.error("--stress-share must be between 0 and 1")
    return args


# --------------------------------------------------------------------------------------------------
# Subprocesses
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """How one subprocess ended: status ok | failed | timeout | memory-limit | disk-limit."""

    status: str
    returncode: int | None
    wall_s: float
    harness_peak_rss_mb: float


def stop_group(proc: subprocess.Popen[bytes]) -> None:
    """Terminate the process group this harness started for `proc` (the runner, its JVM and workers)."""
    for sig, grace in ((signal.SIGTERM, 20.0), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


def run_process(
    cmd: Sequence[str],
    log_path: Path,
    *,
    env: dict[str, str],
    cwd: Path,
    timeout_s: float | None = None,
    max_rss_bytes: int = 0,
    min_free_disk_bytes: int = 0,
) -> Outcome:
    """Run `cmd` in `cwd`, in a session of its own, output to `log_path`; sample its tree's memory every second.

    The working directory takes whatever a tool leaves in it (derby.log, DuckDB's spill files), never the repository.
    The run is stopped when it exceeds `timeout_s`, when its tree's resident memory exceeds `max_rss_bytes` or when
    the free space of the working directory's file system falls below `min_free_disk_bytes` (spills; 0: no limit).
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as out:
        out.write(f"$ {shlex.join(cmd)}\n".encode())
        out.flush()
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd, start_new_session=True)
        status, peak = "", 0
        try:
            try:
                tree: psutil.Process | None = psutil.Process(proc.pid)
            except psutil.NoSuchProcess:
                tree = None  # already ended
            while True:
                try:
                    proc.wait(timeout=1.0)
                    break
                except subprocess.TimeoutExpired:
                    pass
                peak = max(peak, tree_rss_bytes(tree) if tree is not None else 0)
                if timeout_s is not None and time.perf_counter() - start > timeout_s:
                    status = "timeout"
                elif max_rss_bytes and peak > max_rss_bytes:
                    status = "memory-limit"
                elif min_free_disk_bytes and shutil.disk_usage(cwd).free < min_free_disk_bytes:
                    status = "disk-limit"
                if status:
                    log.warning("%s: stopping %s (pid %d)", status, Path(cmd[1]).name, proc.pid)
                    stop_group(proc)
                    break
        except BaseException:
            stop_group(proc)
            raise
        wall = time.perf_counter() - start
    if not status:
        status = STATUS_OK if proc.returncode == 0 else "failed"
    return Outcome(status, proc.returncode, round(wall, 3), round(peak / 2**20, 1))


def log_tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def base_env() -> dict[str, str]:
    """The harness's environment for its subprocesses, without a storage root (each step sets its own)."""
    env = dict(os.environ)
    env.pop("LAKEHOUSE_STORAGE_ROOT", None)
    env.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    return env


# --------------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Dataset:
    people: int
    seed: int
    root: str
    records: str
    n_records: int
    n_without_truth: int
    n_true_persons: int
    build_seconds: dict[str, float]


def read_stamp(root: Path) -> dict[str, Any]:
    path = root / DATA_STAMP
    return dict(json.loads(path.read_text())) if path.is_file() else {}


def write_stamp(root: Path, stamp: dict[str, Any]) -> None:
    (root / DATA_STAMP).write_text(json.dumps(stamp, indent=2) + "\n")


def build_dataset(people: int, seed: int, work: Path, env_name: str) -> Dataset:
    """Generate, build bronze and silver, and export records.parquet, skipping the steps the stamp lists as done."""
    root = (work / f"people-{people}-seed-{seed}").resolve()
    logs = work.resolve() / "logs" / root.name
    records = root / "records.parquet"
    stamp = read_stamp(root)
    if stamp and (stamp.get("people"), stamp.get("seed")) != (people, seed):
        raise RuntimeError(f"{root / DATA_STAMP} is for another sample: {stamp.get('people')}/{stamp.get('seed')}")
    if not stamp.get("generate") and root.exists():
        # Unknown partial state (an interrupted generation): start again from an empty root.
        log.info("%s has no finished generation; removing it", root)
        shutil.rmtree(root)
    root.mkdir(parents=True, exist_ok=True)
    stamp = {"people": people, "seed": seed, **stamp}
    env = {**base_env(), "LAKEHOUSE_STORAGE_ROOT": str(root)}
    lakehouse = [sys.executable, "-m", "lakehouse.cli"]
    steps: list[tuple[str, list[str]]] = [
        ("generate", [*lakehouse, "generate", "--people", str(people), "--seed", str(seed), "--env", env_name]),
        ("silver", [*lakehouse, "run", "--stages", "bronze,silver", "--env", env_name]),
        ("export", [sys.executable, str(HERE / "export_records.py"), "--out", str(records), "--env", env_name]),
    ]
    for step, cmd in steps:
        done = stamp.get(step)
        if done and (step != "export" or records.is_file()):
            log.info("data %d people: %s already done (%s)", people, step, root / DATA_STAMP)
            continue
        log.info("data %d people: %s ... (log %s)", people, step, logs / f"{step}.log")
        outcome = run_process(cmd, logs / f"{step}.log", env=env, cwd=root)
        if outcome.status != STATUS_OK:
            raise RuntimeError(f"data step {step} failed (exit {outcome.returncode}); see {logs / f'{step}.log'}")
        entry: dict[str, Any] = {"seconds": outcome.wall_s, "finished_at": now_iso()}
        if step == "export":
            lines = (logs / "export.log").read_text().strip().splitlines()
            entry.update(json.loads(lines[-1]))
        stamp[step] = entry
        write_stamp(root, stamp)
        log.info("data %d people: %s took %.0f s", people, step, outcome.wall_s)
    export = stamp["export"]
    return Dataset(
        people=people,
        seed=seed,
        root=str(root),
        records=str(records),
        n_records=int(export["n_records"]),
        n_without_truth=int(export["n_without_truth"]),
        n_true_persons=int(export["n_true_persons"]),
        build_seconds={step: float(stamp[step]["seconds"]) for step, _ in steps},
    )


def hmac_key() -> bytes:
    value = os.environ.get("LAKEHOUSE_HMAC_KEY", "")
    if not value:
        raise SystemExit("run_bench: LAKEHOUSE_HMAC_KEY is not set (make bench-er sets the demo key)")
    return value.encode("utf-8")


def placeholder_tokens(key: bytes) -> tuple[str, list[str]]:
    """The SSN token and the SSN variant tokens of STRESS_SSN, as silver computes them (silver.standardize)."""
    from lakehouse.silver.standardize import VARIANT_TOKEN_HEX_DIGITS, deletion_variants

    token = hmac.digest(key, STRESS_SSN.encode("utf-8"), "sha256").hex()
    variants = sorted(
        hmac.digest(key, f"ssn~{v}".encode(), "sha256").hex()[:VARIANT_TOKEN_HEX_DIGITS]
        for v in deletion_variants(STRESS_SSN)
    )
    return token, variants


def stressed_copy(source: Path, dest: Path, share: float, seed: int, key: bytes) -> dict[str, Any]:
    """Write `source` with `share` of its records (seeded choice) given one shared SSN and the commonest name.

    The chosen records get STRESS_SSN's token (and its variant tokens) as ssn_token and the commonest
    (first_name, last_name) pair of the data; everything else, true_person included, is kept. One SSN block and
    one name block then hold `share` of all records.
    """
    table = pq.read_table(source).sort_by("record_id")
    n = table.num_rows
    k = round(n * share)
    chosen = np.zeros(n, dtype=bool)
    chosen[np.random.default_rng(seed).choice(n, size=k, replace=False)] = True
    mask = pa.array(chosen)
    named = table.filter(pc.and_(pc.is_valid(table["first_name"]), pc.is_valid(table["last_name"])))
    counts = (
        named.group_by(["first_name", "last_name"])
        .aggregate([([], "count_all")])
        .sort_by([("count_all", "descending"), ("first_name", "ascending"), ("last_name", "ascending")])
    )
    first, last, holders = counts["first_name"][0], counts["last_name"][0], counts["count_all"][0].as_py()
    token, variants = placeholder_tokens(key)
    replacements = {
        "ssn_token": pa.scalar(token, table.schema.field("ssn_token").type),
        "ssn_variant_tokens": pa.scalar(variants, table.schema.field("ssn_variant_tokens").type),
        "first_name": first,
        "last_name": last,
    }
    for column, value in replacements.items():
        index = table.schema.get_field_index(column)
        table = table.set_column(index, column, pc.if_else(mask, value, table[column]))
    pq.write_table(table, dest)
    log.info("stressed copy %s: %d of %d records share one SSN token and the commonest name", dest, k, n)
    return {"n_records": n, "n_stressed": k, "commonest_name_records": holders, "share": share, "seed": seed}


# --------------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------------


def pairs_within_groups(table: pa.Table, keys: list[str]) -> int:
    """Record pairs inside the groups of `keys`: the sum of n(n-1)/2 over the group sizes."""
    if table.num_rows == 0:
        return 0
    sizes = pc.cast(table.group_by(keys).aggregate([([], "count_all")]).column("count_all"), pa.int64())
    return int(pc.sum(pc.divide(pc.multiply(sizes, pc.subtract(sizes, 1)), 2)).as_py() or 0)


def evaluate(clusters_path: Path, truth: pa.Table) -> dict[str, Any]:
    """Pairwise precision, recall and F1 of the clusters against true_person, and the number of clusters.

    `truth` is record_id, true_person for every input record. The clusters must cover every input record once;
    records without a true person are left out of the pair counts (not of n_clusters).
    """
    clusters = pq.read_table(clusters_path, columns=["record_id", "cluster_id"])
    clusters = clusters.cast(pa.schema([("record_id", pa.string()), ("cluster_id", pa.string())]))
    n_ids = len(pc.unique(clusters["record_id"]))
    covered = clusters.join(truth.select(["record_id"]), "record_id", join_type="inner").num_rows
    if n_ids != clusters.num_rows or covered != truth.num_rows or clusters.num_rows != truth.num_rows:
        raise ValueError(
            f"clusters.parquet has {clusters.num_rows} rows ({n_ids} distinct ids, {covered} input records) "
            f"for {truth.num_rows} input records"
        )
    labelled = clusters.join(truth.filter(pc.is_valid(truth["true_person"])), "record_id", join_type="inner")
    predicted = pairs_within_groups(labelled, ["cluster_id"])
    true = pairs_within_groups(labelled, ["true_person"])
    correct = pairs_within_groups(labelled, ["cluster_id", "true_person"])
    precision = correct / predicted if predicted else None
    recall = correct / true if true else None
    f1 = 2 * precision * recall / (precision + recall) if precision and recall else None
    return {
        "precision": round(precision, 5) if precision is not None else None,
        "recall": round(recall, 5) if recall is not None else None,
        "f1": round(f1, 5) if f1 is not None else None,
        "predicted_pairs": predicted,
        "true_pairs": true,
        "correct_pairs": correct,
        "n_clusters": len(pc.unique(clusters["cluster_id"])),
        "n_evaluated_records": labelled.num_rows,
    }


# --------------------------------------------------------------------------------------------------
# Runs
# --------------------------------------------------------------------------------------------------


def system_command(system: str, records: Path, out: Path, args: argparse.Namespace) -> list[str]:
    if system in ("ours", "baseline"):
        engine = "probabilistic" if system == "ours" else "deterministic"
        script = HERE / "run_engine.py"
        return [
            sys.executable,
            str(script),
            "--input",
            str(records),
            "--engine",
            engine,
            "--out",
            str(out),
            "--env",
            args.env,
        ]
    backend = system.removeprefix("splink-")
    script = HERE / "splink" / "run_splink.py"
    return [str(args.splink_python), str(script), "--input", str(records), "--backend", backend, "--out", str(out)]


def run_system(
    system: str,
    dataset: Dataset,
    *,
    variant: str,
    records: Path,
    truth: pa.Table,
    repeat: int,
    args: argparse.Namespace,
) -> dict[str, Any]:
    """One run of `system`: the subprocess, its timings.json and the evaluation of its clusters."""
    out = (
        args.work.resolve() / "runs" / f"people-{dataset.people}-seed-{dataset.seed}" / variant / system / f"r{repeat}"
    )
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    log_path = out.parent / f"r{repeat}.log"
    cmd = system_command(system, records, out, args)
    log.info("%s people %d, %s, repeat %d: running (log %s)", system, dataset.people, variant, repeat, log_path)
    max_rss = int(args.max_memory_gb * 2**30) if args.max_memory_gb > 0 else 0
    started_at = now_iso()
    # Spark's shuffle and block files go under the run's folder too, so that a stopped run leaves nothing in /tmp.
    env = {**base_env(), "SPARK_LOCAL_DIRS": str(out / "spark-local")}
    outcome = run_process(
        cmd,
        log_path,
        env=env,
        cwd=out,
        timeout_s=args.timeout_s,
        max_rss_bytes=max_rss,
        min_free_disk_bytes=int(args.min_free_disk_gb * 2**30),
    )
    result: dict[str, Any] = {
        "people": dataset.people,
        "seed": dataset.seed,
        "variant": variant,
        "system": system,
        "repeat": repeat,
        "n_records": truth.num_rows,
        "started_at": started_at,
        **asdict(outcome),
        "out": str(out),
        "log": str(log_path),
    }
    if outcome.status == STATUS_OK:
        try:
            timings = json.loads((out / "timings.json").read_text())
            result.update(
                {
                    "link_s": timings["seconds"]["total"],
                    "seconds": timings["seconds"],
                    "cpu_seconds": timings.get("cpu_seconds"),
                    "peak_rss_mb": timings["peak_rss_mb"],
                    "n_pairs_scored": timings.get("n_pairs_scored"),
                    "load_average_1m": timings.get("machine", {}).get("load_average_1m"),
                    "config": {k: timings[k] for k in CONFIG_KEYS if k in timings},
                    "metrics": evaluate(out / "clusters.parquet", truth),
                }
            )
        except (OSError, KeyError, ValueError) as exc:
            result.update({"status": "invalid-output", "error": str(exc)})
    # Scratch (a stopped run's storage root, checkpoints, spill files) goes; clusters and timings stay.
    for child in out.iterdir():
        if child.is_dir():
            shutil.rmtree(child, ignore_errors=True)
    if result["status"] != STATUS_OK:
        result.setdefault("error", log_tail(log_path))
        log.warning("%s people %d, %s: %s (see %s)", system, dataset.people, variant, result["status"], log_path)
    else:
        m = result["metrics"]
        log.info(
            "%s people %d, %s, repeat %d: link %.1f s, wall %.1f s, peak %.2f GiB, F1 %s",
            system,
            dataset.people,
            variant,
            repeat,
            result["link_s"],
            result["wall_s"],
            result["peak_rss_mb"] / 1024,
            m["f1"],
        )
    return result


def skipped(system: str, dataset: Dataset, variant: str, repeat: int, reason: str) -> dict[str, Any]:
    return {
        "people": dataset.people,
        "seed": dataset.seed,
        "variant": variant,
        "system": system,
        "repeat": repeat,
        "status": "skipped",
        "reason": reason,
    }


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --------------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Summary:
    """The runs of one system on one size and variant, reduced to medians."""

    system: str
    n_ok: int
    n_runs: int
    status: str
    link_s: float | None
    link_min: float | None
    link_max: float | None
    link_cpu_s: float | None
    wall_s: float | None
    peak_gib: float | None
    n_pairs: int | None
    n_clusters: int | None
    precision: float | None
    recall: float | None
    f1: float | None


def median_of(runs: list[dict[str, Any]], get: Callable[[dict[str, Any]], Any]) -> Any:
    values = [get(r) for r in runs]
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def summarize(system: str, runs: list[dict[str, Any]]) -> Summary:
    ok = [r for r in runs if r["status"] == STATUS_OK]
    tried = [r for r in runs if r["status"] != "skipped"]
    failures = sorted({r["status"] for r in tried if r["status"] != STATUS_OK})
    status = STATUS_OK if ok else (", ".join(failures) or "skipped")
    links = [float(r["link_s"]) for r in ok]
    peak = median_of(ok, lambda r: r["peak_rss_mb"])
    return Summary(
        system=system,
        n_ok=len(ok),
        n_runs=len(tried),
        status=status,
        link_s=statistics.median(links) if links else None,
        link_min=min(links) if links else None,
        link_max=max(links) if links else None,
        link_cpu_s=median_of(ok, lambda r: (r.get("cpu_seconds") or {}).get("total")),
        wall_s=median_of(ok, lambda r: r["wall_s"]),
        peak_gib=peak / 1024 if peak is not None else None,
        n_pairs=median_of(ok, lambda r: r.get("n_pairs_scored")),
        n_clusters=median_of(ok, lambda r: r["metrics"]["n_clusters"]),
        precision=median_of(ok, lambda r: r["metrics"]["precision"]),
        recall=median_of(ok, lambda r: r["metrics"]["recall"]),
        f1=median_of(ok, lambda r: r["metrics"]["f1"]),
    )


def fmt_int(value: float | None) -> str:
    return f"{round(value):,}" if value is not None else "–"


def fmt_float(value: float | None, digits: int = 4) -> str:
    return f"{value:.{digits}f}" if value is not None else "–"


def fmt_seconds(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def fmt_link(s: Summary, runs: list[dict[str, Any]], limits: dict[str, Any]) -> str:
    if s.link_s is None:
        reason = s.status
        if limits.get("timeout_s"):
            reason = reason.replace("timeout", f"timeout (> {fmt_seconds(limits['timeout_s'])} s)")
        if limits.get("max_memory_gb"):
            reason = reason.replace("memory-limit", f"stopped above {limits['max_memory_gb']} GiB")
        if limits.get("min_free_disk_gb"):
            reason = reason.replace("disk-limit", f"stopped: under {limits['min_free_disk_gb']} GiB disk free")
        skips = [r.get("reason") for r in runs if r["status"] == "skipped" and r.get("reason")]
        if s.status == "skipped" and skips:
            reason = f"skipped: {skips[0]}"
        return reason
    text = fmt_seconds(s.link_s)
    if s.n_ok > 1:
        text += f" ({fmt_seconds(s.link_min)}–{fmt_seconds(s.link_max)})"
    if s.n_ok < s.n_runs:
        text += f" [{s.n_ok} of {s.n_runs} ok]"
    return text


def ratio(value: float | None, reference: float | None) -> str:
    if value is None or not reference:
        return "–"
    return f"{value / reference:.2f}×"


def size_table(runs: list[dict[str, Any]], systems: list[str], limits: dict[str, Any]) -> list[str]:
    by_system = {s: [r for r in runs if r["system"] == s] for s in systems}
    summaries = {s: summarize(s, rs) for s, rs in by_system.items() if rs}
    ours = summaries.get("ours")
    lines = [
        "| system | records | candidate pairs | precision | recall | F1 | clusters | link time, s: median (min–max) "
        "| link CPU, s | run wall, s | peak memory, GiB | link time / ours |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for system, s in summaries.items():
        n_records = next((r["n_records"] for r in by_system[system] if "n_records" in r), None)
        lines.append(
            f"| {SYSTEM_LABELS[system]} | {fmt_int(n_records)} | {fmt_int(s.n_pairs)} | {fmt_float(s.precision)} "
            f"| {fmt_float(s.recall)} | {fmt_float(s.f1)} | {fmt_int(s.n_clusters)} "
            f"| {fmt_link(s, by_system[system], limits)} | {fmt_seconds(s.link_cpu_s)} | {fmt_seconds(s.wall_s)} "
            f"| {fmt_float(s.peak_gib, 2)} "
            f"| {ratio(s.link_s, ours.link_s if ours else None)} |"
        )
    return lines


def stress_table(
    plain: list[dict[str, Any]], stressed: list[dict[str, Any]], systems: list[str], limits: dict[str, Any]
) -> list[str]:
    lines = [
        "| system | F1 plain → stressed | precision plain → stressed | candidate pairs stressed "
        "| link time stressed, s | stressed / plain time | peak memory stressed, GiB |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for system in systems:
        runs = [r for r in stressed if r["system"] == system]
        if not runs:
            continue
        s = summarize(system, runs)
        p = summarize(system, [r for r in plain if r["system"] == system])
        lines.append(
            f"| {SYSTEM_LABELS[system]} | {fmt_float(p.f1)} → {fmt_float(s.f1)} "
            f"| {fmt_float(p.precision)} → {fmt_float(s.precision)} | {fmt_int(s.n_pairs)} "
            f"| {fmt_link(s, runs, limits)} | {ratio(s.link_s, p.link_s)} | {fmt_float(s.peak_gib, 2)} |"
        )
    return lines


def system_lines(runs: list[dict[str, Any]], systems: list[str]) -> list[str]:
    """One bullet per system: how it was configured, from the timings.json of its first successful run."""
    descriptions = {
        "ours": "`lakehouse.er.linking.probabilistic_linkage` with conf/matching.yaml, via bench/er/run_engine.py",
        "baseline": "the deterministic rules of conf/matching.yaml and connected components, via run_engine.py",
        "splink-duckdb": "bench/er/splink/run_splink.py, an in-memory DuckDB database",
        "splink-spark": "bench/er/splink/run_splink.py on Spark",
    }
    lines = []
    for system in systems:
        config = next((r.get("config", {}) for r in runs if r["system"] == system and r["status"] == STATUS_OK), {})
        details = []
        if config.get("threshold") is not None:
            details.append(f"clusters links at match probability ≥ {config['threshold']}")
        if config.get("splink_version"):
            details.append(f"Splink {config['splink_version']}")
        if system == "splink-duckdb" and config.get("duckdb_version"):
            details.append(f"DuckDB {config['duckdb_version']}")
        spark = config.get("spark")
        if spark and system != "splink-duckdb":
            version = config.get("pyspark_version", "")
            details.append(f"Spark {version} {spark.get('master')}, driver memory {spark.get('driver_memory')}")
        suffix = f" ({'; '.join(details)})" if details else ""
        lines.append(f"- **{SYSTEM_LABELS[system]}**: {descriptions[system]}{suffix}.")
    return lines


def render_markdown(results: dict[str, Any]) -> str:
    machine = results["machine"]
    args = results["args"]
    systems = [s for s in SYSTEMS if s in args["systems"] or s in args.get("stress_systems", [])]
    lines = [
        "## Entity-resolution benchmark",
        "",
        f"Measured {results['started_at'][:10]} on {machine['cores']} cores and "
        f"{machine['memory_mb'] / 1024:.0f} GiB ({machine['platform']}); 1-minute load average "
        f"{' → '.join(str(x) for x in results.get('load_average_1m', []))} over the run, which took "
        f"{fmt_seconds(results.get('seconds'))} s. {args['repeats']} run(s) per system and size, one at a time; "
        f"time limit {fmt_seconds(args['timeout_s'])} s per run.",
        "",
        "Pairwise precision, recall and F1 against the generator's true person (records without one left out). "
        "*Link time* is the system's own `seconds.total`: training, scoring and clustering (for the baseline "
        "blocking and clustering), without start-up, loading and writing; *run wall* is the whole subprocess "
        "(Python and JVM start-up, loading, linking, writing). *Peak memory* is the resident memory of the "
        "process tree (Python, DuckDB or the Spark JVM). Medians over the runs.",
        "",
    ]
    lines += [*system_lines(results["runs"], systems), ""]
    for dataset in results["datasets"]:
        people = dataset["people"]
        runs = [r for r in results["runs"] if r["people"] == people]
        plain = [r for r in runs if r["variant"] == "plain"]
        lines += [
            f"### {people:,} people, {dataset['n_records']:,} records (seed {dataset['seed']})",
            "",
            f"{dataset['n_true_persons']:,} true persons. The data was built once: "
            + ", ".join(f"{step} {fmt_seconds(sec)} s" for step, sec in dataset["build_seconds"].items())
            + ".",
            "",
            *size_table(plain, systems, args),
            "",
        ]
        stressed = [r for r in runs if r["variant"] == "stressed"]
        info = dataset.get("stress")
        if stressed and info:
            lines += [
                f"Stressed copy: {info['n_stressed']:,} records ({info['share']:.0%}, seeded choice) share one "
                f"valid-looking placeholder SSN and the commonest first and last name (held by "
                f"{info['commonest_name_records']:,} records before); true persons unchanged.",
                "",
                *stress_table(plain, stressed, [s for s in systems if s in args["stress_systems"]], args),
                "",
            ]
    for f in results.get("failed_datasets", []):
        lines += [f"Data for {f['people']:,} people could not be built: {f['error']}", ""]
    lines += [f"Command: `{results['command']}`", ""]
    return "\n".join(lines)


def save(results: dict[str, Any], directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "er-bench.json").write_text(json.dumps(results, indent=2) + "\n")
    (directory / "er-bench.md").write_text(render_markdown(results))


# --------------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------------


def bench(args: argparse.Namespace, argv: Sequence[str]) -> dict[str, Any]:
    key = hmac_key()
    started = time.perf_counter()
    load_before = os.getloadavg()
    results: dict[str, Any] = {
        "started_at": now_iso(),
        "command": shlex.join(["bench/er/run_bench.py", *argv]),
        "args": {
            "people": args.people,
            "seed": args.seed,
            "repeats": args.repeats,
            "systems": args.systems,
            "splink_spark_max_people": args.splink_spark_max_people,
            "timeout_s": args.timeout_s,
            "max_memory_gb": args.max_memory_gb,
            "min_free_disk_gb": args.min_free_disk_gb,
            "stress": args.stress,
            "stress_share": args.stress_share,
            "stress_systems": args.stress_systems if args.stress else [],
            "env": args.env,
        },
        "machine": machine_info(load_before),
        "datasets": [],
        "failed_datasets": [],
        "runs": [],
    }

    def checkpoint() -> None:
        results["seconds"] = round(time.perf_counter() - started, 1)
        results["load_average_1m"] = [round(load_before[0], 2), round(os.getloadavg()[0], 2)]
        save(results, args.results)

    for people in args.people:
        try:
            dataset = build_dataset(people, args.seed, args.work, args.env)
        except RuntimeError as exc:
            log.error("%s", exc)
            results["failed_datasets"].append({"people": people, "seed": args.seed, "error": str(exc)})
            checkpoint()
            continue
        if args.build_only:
            log.info("data %d people: %s", people, dataset.records)
            continue
        entry: dict[str, Any] = asdict(dataset)
        results["datasets"].append(entry)
        variants: list[tuple[str, Path, list[str]]] = [("plain", Path(dataset.records), args.systems)]
        if args.stress:
            stressed_path = Path(dataset.root) / "records-stressed.parquet"
            entry["stress"] = stressed_copy(Path(dataset.records), stressed_path, args.stress_share, args.seed, key)
            variants.append(("stressed", stressed_path, args.stress_systems))
        checkpoint()
        for variant, records, systems in variants:
            truth = pq.read_table(records, columns=["record_id", "true_person"])
            given_up: set[str] = set()
            for repeat in range(1, args.repeats + 1):
                for system in systems:
                    if system == "splink-spark" and people > args.splink_spark_max_people:
                        reason = f"above {args.splink_spark_max_people:,} people"
                        results["runs"].append(skipped(system, dataset, variant, repeat, reason))
                        continue
                    if system in given_up:
                        reason = "an earlier run at this size did not finish"
                        results["runs"].append(skipped(system, dataset, variant, repeat, reason))
                        continue
                    result = run_system(
                        system, dataset, variant=variant, records=records, truth=truth, repeat=repeat, args=args
                    )
                    results["runs"].append(result)
                    if result["status"] != STATUS_OK:
                        given_up.add(system)
                    checkpoint()
    checkpoint()
    return results


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S"
    )
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.render_only:
        results = json.loads((args.results / "er-bench.json").read_text())
        (args.results / "er-bench.md").write_text(render_markdown(results))
        print(render_markdown(results))
        return 0
    if any(s.startswith("splink") for s in args.systems) and not args.splink_python.is_file():
        print(f"run_bench: {args.splink_python} not found; run bench/er/splink/setup.sh first", file=sys.stderr)
        return 2
    results = bench(args, argv)
    print(render_markdown(results))
    log.info("results: %s, %s", args.results / "er-bench.json", args.results / "er-bench.md")
    return 1 if results["failed_datasets"] else 0


if __name__ == "__main__":
    sys.exit(main())
