"""Scale benchmark (`make bench`): the whole pipeline at growing sizes, and how its cost grows with the data.

For each size (people) and each repeat, a fresh lakehouse under <work>/people-<N>-seed-<S> (its own storage root):
`lakehouse generate`, then every stage as its own `lakehouse run --stages <stage>` process, as a scheduler runs
them. Each stage's process runs with Spark's event log on (PYSPARK_SUBMIT_ARGS, nothing in conf/), and a sampler
reads the resident memory of its process tree every 0.2 s. Per stage it records:

- seconds: the stage's own time (its "stage X: done in N s" log line) and the process's wall time (JVM start-up
  and session set-up included);
- rows per second: the delivered rows over the stage's own time (every stage is normalised by the same input);
- peak memory: resident memory of the process tree (the driver JVM and its Python workers; in local mode the
  driver is also the executor) and the JVM heap's peak as Spark's executor metrics report it, per executor;
- shuffle: bytes written and read, bytes spilled to disk, tasks (event log task metrics);
- for the link stage: person records, candidate pairs and candidate pairs per record (its figures).

Sizes at or above --large-from run with --large-env (more driver memory, more shuffle partitions). The last
repeat's lakehouse of each size is kept, with the stamp file `make bench-bi` reads (so `make bench-bi
BENCH_BI_WORK=bench/scale/work` reuses a million-people lakehouse instead of building its own).

Results: <results>/scale-bench.json (every run), scale-bench.md (medians per size and stage, growth exponents)
and scale-bench.png (seconds per stage against people, log-log, with a line of slope 1).

    .venv/bin/python bench/scale/run_bench.py --people 10000,100000,1000000 --repeats 3,3,1
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(HERE.parent / "er"))
from measure import ProcessTreeMonitor, machine_info  # noqa: E402

from lakehouse.pipeline import git_commit  # noqa: E402

log = logging.getLogger("scale_bench")

STAGES = ("bronze", "silver", "link", "gold", "public")
DONE = re.compile(
    r"INFO lakehouse\.pipeline: stage (\w+): done in ([\d.]+) s, ([\d,]+) rows read and ([\d,]+) written: (.*)$"
)
GENERATED = re.compile(r"generated \S+: (\d+) rows in")


def run_measured(command: list[str], environment: dict[str, str], log_file: Path) -> tuple[float, int, str]:
    """Run `command` to completion; (wall seconds, peak tree RSS bytes, its stderr). Raises on failure."""
    started = time.perf_counter()
    with log_file.open("w", encoding="utf-8") as sink:
        process = subprocess.Popen(command, env=environment, cwd=REPO, stdout=sink, stderr=subprocess.STDOUT, text=True)
        with ProcessTreeMonitor(pid=process.pid) as memory:
            code = process.wait()
    text = log_file.read_text(encoding="utf-8", errors="replace")
    if code != 0:
        raise RuntimeError(f"{' '.join(command)} failed with exit code {code}; log {log_file}:\n{text[-3000:]}")
    return time.perf_counter() - started, memory.peak_bytes, text


def event_log_figures(folder: Path) -> dict[str, Any]:
    """Shuffle, spill, task count and per-executor peak JVM heap from the Spark event logs in `folder`."""
    figures: dict[str, Any] = {
        "shuffle_write_bytes": 0,
        "shuffle_read_bytes": 0,
        "spill_disk_bytes": 0,
        "spill_memory_bytes": 0,
        "tasks": 0,
        "peak_jvm_heap_bytes": {},
    }
    heap: dict[str, int] = figures["peak_jvm_heap_bytes"]
    # Spark 4 writes an application's log as a folder (eventlog_v2_<app>/events_<n>_<app>) beside marker files
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.stat().st_size > 0):
        with path.open(encoding="utf-8") as events:
            for line in events:
                if not line.startswith("{"):
                    continue
                event = json.loads(line)
                kind = event.get("Event")
                if kind == "SparkListenerTaskEnd":
                    metrics = event.get("Task Metrics") or {}
                    figures["tasks"] += 1
                    figures["shuffle_write_bytes"] += metrics.get("Shuffle Write Metrics", {}).get(
                        "Shuffle Bytes Written", 0
                    )
                    read = metrics.get("Shuffle Read Metrics", {})
                    figures["shuffle_read_bytes"] += read.get("Remote Bytes Read", 0) + read.get("Local Bytes Read", 0)
                    figures["spill_disk_bytes"] += metrics.get("Disk Bytes Spilled", 0)
                    figures["spill_memory_bytes"] += metrics.get("Memory Bytes Spilled", 0)
                    executor = str(event.get("Task Info", {}).get("Executor ID", "?"))
                    peak = (event.get("Task Executor Metrics") or {}).get("JVMHeapMemory", 0)
                    heap[executor] = max(heap.get(executor, 0), peak)
                elif kind == "SparkListenerStageExecutorMetrics":
                    executor = str(event.get("Executor ID", "?"))
                    peak = (event.get("Executor Metrics") or {}).get("JVMHeapMemory", 0)
                    heap[executor] = max(heap.get(executor, 0), peak)
    return figures


def event_log_args(folder: Path) -> str:
    """PYSPARK_SUBMIT_ARGS that turn on an uncompressed event log in `folder`, with per-stage executor peaks."""
    return (
        " ".join(
            f"--conf {k}={v}"
            for k, v in {
                "spark.eventLog.enabled": "true",
                "spark.eventLog.dir": f"file://{folder}",
                "spark.eventLog.compress": "false",
                "spark.eventLog.logStageExecutorMetrics": "true",
            }.items()
        )
        + " pyspark-shell"
    )


STATE_FILE = "bench-run.json"


def code_version() -> str:
    """The checkout's commit (as the pipeline records it), with "+changes" when the working tree differs from it."""
    changed = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"], check=False, cwd=REPO, capture_output=True, text=True
    ).stdout.strip()
    return (git_commit() or "unknown") + ("+changes" if changed else "")


def resumed_run(root: Path, people: int, seed: int, env: str, repeat: int) -> dict[str, Any] | None:
    """The run recorded in `root` to go on with (its generate and finished stages), or None to start afresh.

    A finished run of this repeat is returned as it is (its figures are reused); a finished run of another repeat
    gives None (that repeat is done, this one starts afresh). Raises when the record is of another size, seed or
    environment, when an unfinished run is of another repeat, or when a stage was interrupted: its tables are
    partial, so running it again would not time a fresh stage.
    """
    path = root / STATE_FILE
    if not path.is_file():
        return None
    run: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    recorded = (run.get("people"), run.get("seed"), run.get("env"))
    if recorded != (people, seed, env):
        raise RuntimeError(f"{path} records people, seed, env {recorded}, not {(people, seed, env)}")
    if run.get("repeat") != repeat:
        if "pipeline_s" in run:
            return None
        raise RuntimeError(f"{path} records an unfinished repeat {run.get('repeat')}, not repeat {repeat}")
    if run.get("running"):
        raise RuntimeError(
            f"{path}: stage {run['running']} was interrupted and left partial tables; run this size again "
            "without --resume"
        )
    return run


def save_run(root: Path, run: dict[str, Any]) -> None:
    (root / STATE_FILE).write_text(json.dumps(run, indent=2) + "\n", encoding="utf-8")


def run_size(
    people: int, seed: int, env: str, work: Path, repeat: int, *, resume: bool = False, through: str | None = None
) -> dict[str, Any] | None:
    """One fresh pipeline run at `people`: generate, then each stage measured in its own process.

    After each step the run so far is saved in <root>/bench-run.json. With `through`, the run stops after that
    stage and returns None; with `resume`, a saved run goes on from its next stage (each stage is its own process
    in any case, so a run may span several sittings; the commit of each step is recorded).
    """
    root = work / f"people-{people}-seed-{seed}"
    logs = root / "bench-logs"
    lakehouse = str(Path(sys.executable).parent / "lakehouse")
    environment = dict(os.environ, LAKEHOUSE_STORAGE_ROOT=str(root))
    run = resumed_run(root, people, seed, env, repeat) if resume else None
    if run is None:
        if root.exists():
            shutil.rmtree(root)
        logs.mkdir(parents=True)
        log.info("people %d, repeat %d, env %s: generate", people, repeat, env)
        code = code_version()
        seconds, _, text = run_measured(
            [lakehouse, "generate", "--people", str(people), "--seed", str(seed), "--env", env],
            environment,
            logs / "generate.log",
        )
        run = {
            "people": people,
            "seed": seed,
            "repeat": repeat,
            "env": env,
            "delivered_rows": sum(int(m.group(1)) for m in GENERATED.finditer(text)),
            "generate_s": round(seconds, 1),
            "stages": {},
            "code": {"generate": code},
        }
        save_run(root, run)
    elif "pipeline_s" in run:
        log.info("people %d, repeat %d: reusing the finished run (code %s)", people, repeat, run["code"]["public"])
    else:
        log.info("people %d, repeat %d: resuming after %s", people, repeat, ", ".join(["generate", *run["stages"]]))
    delivered = int(run["delivered_rows"])
    for stage in STAGES:
        if stage in run["stages"]:
            continue
        events = logs / f"events-{stage}"
        events.mkdir()
        log.info("people %d, repeat %d: stage %s", people, repeat, stage)
        run["code"][stage] = code_version()
        save_run(root, {**run, "running": stage})
        wall, peak_rss, text = run_measured(
            [lakehouse, "run", "--stages", stage, "--env", env],
            {**environment, "PYSPARK_SUBMIT_ARGS": event_log_args(events)},
            logs / f"{stage}.log",
        )
        done = [m for m in (DONE.search(line) for line in text.splitlines()) if m and m.group(1) == stage]
        if not done:
            raise RuntimeError(f"stage {stage} logged no 'done' line ({logs / f'{stage}.log'})")
        stage_s = float(done[-1].group(2))
        figures = json.loads(done[-1].group(5))
        measured: dict[str, Any] = {
            "stage_s": stage_s,
            "process_s": round(wall, 1),
            "rows_per_s": round(delivered / stage_s) if stage_s else None,
            "rows_read": int(done[-1].group(3).replace(",", "")),
            "rows_written": int(done[-1].group(4).replace(",", "")),
            "peak_rss_bytes": peak_rss,
            **event_log_figures(events),
        }
        if stage == "link":
            records, pairs = int(figures.get("records") or 0), int(figures.get("candidate_pairs") or 0)
            measured.update(
                records=records,
                candidate_pairs=pairs,
                pairs_per_record=round(pairs / records, 2) if records else None,
                persons=figures.get("persons"),
            )
        run["stages"][stage] = measured
        save_run(root, run)
        log.info("people %d, stage %s: %.1f s (process %.1f s)", people, stage, stage_s, wall)
        if stage == through and stage != STAGES[-1]:
            log.info("people %d: stopped after stage %s; run again with --resume to go on", people, stage)
            return None
    run["pipeline_s"] = round(sum(s["stage_s"] for s in run["stages"].values()), 1)
    save_run(root, run)
    stamp = {
        "people": people,
        "seed": seed,
        "env": env,
        "engine": None,
        "seconds": {"generate": run["generate_s"], **{s: m["stage_s"] for s, m in run["stages"].items()}},
    }
    (root / "bench-data.json").write_text(json.dumps(stamp) + "\n", encoding="utf-8")
    return run


def medians(runs: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """Per size: the median of each stage's seconds and of the pipeline's, with the other figures of the median run."""
    by_size: dict[int, list[dict[str, Any]]] = {}
    for run in runs:
        by_size.setdefault(run["people"], []).append(run)
    summary: dict[int, dict[str, Any]] = {}
    for people, group in sorted(by_size.items()):
        middle = sorted(group, key=lambda r: r["pipeline_s"])[(len(group) - 1) // 2]
        summary[people] = {
            "runs": len(group),
            "delivered_rows": middle["delivered_rows"],
            "pipeline_s": statistics.median(r["pipeline_s"] for r in group),
            "pipeline_range_s": [min(r["pipeline_s"] for r in group), max(r["pipeline_s"] for r in group)],
            "stage_s": {s: statistics.median(r["stages"][s]["stage_s"] for r in group) for s in STAGES},
            "median_run": middle,
        }
    return summary


def growth(summary: dict[int, dict[str, Any]], key: str = "pipeline_s") -> list[tuple[int, int, float]]:
    """(smaller, larger, exponent) between consecutive sizes: time grows as people**exponent (1 is linear)."""
    sizes = sorted(summary)
    out = []
    for small, large in itertools.pairwise(sizes):
        t_small, t_large = summary[small][key], summary[large][key]
        out.append((small, large, round(math.log(t_large / t_small) / math.log(large / small), 2)))
    return out


def merged(results: list[dict[str, Any]]) -> dict[str, Any]:
    """One result of the runs of several (the machine and finish time of the last); the sources are listed."""
    runs = [run for result in results for run in result["runs"]]
    return {
        "runs": runs,
        "machine": results[-1]["machine"],
        "summary": medians(runs),
        "finished_at": results[-1]["finished_at"],
        "merged_from": [result["finished_at"] for result in results],
    }


def render(result: dict[str, Any]) -> str:
    """The results as Markdown: one row per size, the growth exponents, where the time goes."""
    summary = {int(k): v for k, v in result["summary"].items()}
    machine = result["machine"]
    lines = [
        f"# Scale benchmark, {result['finished_at']}",
        "",
        f"Machine: {machine['cores']} cores, {machine['memory_mb'] // 1024} GiB, {machine['platform']}; Spark in "
        f"local mode. Medians of the runs shown (min-max of the pipeline). Stage seconds are each stage's own time.",
        "",
    ]
    if result.get("merged_from"):
        lines += [
            f"Merged from the results finished at {', '.join(result['merged_from'])}: sizes measured in different "
            "sittings, possibly with different code (each run's `code` in the JSON, where recorded).",
            "",
        ]
    lines += [
        "| people | delivered rows | runs | bronze s | silver s | link s | gold s | public s | pipeline s (min-max) "
        "| rows/s | peak RSS GiB | peak heap GiB | shuffle written GiB | spilled GiB | pairs/record |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    gib = 2**30
    for people, row in sorted(summary.items()):
        run = row["median_run"]["stages"]
        low, high = row["pipeline_range_s"]
        peak_rss = max(s["peak_rss_bytes"] for s in run.values()) / gib
        peak_heap = max(max(s["peak_jvm_heap_bytes"].values(), default=0) for s in run.values()) / gib
        shuffle = sum(s["shuffle_write_bytes"] for s in run.values()) / gib
        spilled = sum(s["spill_disk_bytes"] for s in run.values()) / gib
        stage = " | ".join(f"{row['stage_s'][s]:,.0f}" for s in STAGES)
        lines.append(
            f"| {people:,} | {row['delivered_rows']:,} | {row['runs']} | {stage} | {row['pipeline_s']:,.0f} "
            f"({low:,.0f}-{high:,.0f}) | {row['delivered_rows'] / row['pipeline_s']:,.0f} | {peak_rss:.1f} "
            f"| {peak_heap:.1f} | {shuffle:.2f} | {spilled:.2f} | {run['link'].get('pairs_per_record')} |"
        )
    lines += ["", "Growth (time grows as people to the power shown; 1 is linear):", ""]
    for small, large, exponent in growth(summary):
        per_stage = ", ".join(
            f"{s} {math.log(summary[large]['stage_s'][s] / summary[small]['stage_s'][s]) / math.log(large / small):.2f}"
            for s in STAGES
            if summary[small]["stage_s"][s] > 0
        )
        lines.append(f"- {small:,} to {large:,} people: pipeline {exponent} ({per_stage})")
    return "\n".join(lines) + "\n"


def chart(result: dict[str, Any], path: Path) -> None:
    """Seconds per stage and for the pipeline against people, log-log, with a dotted line of slope 1."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = {int(k): v for k, v in result["summary"].items()}
    sizes = sorted(summary)
    figure, axes = plt.subplots(figsize=(7, 4.5))
    for stage in STAGES:
        axes.plot(sizes, [summary[p]["stage_s"][stage] for p in sizes], marker="o", label=stage)
    pipeline = [summary[p]["pipeline_s"] for p in sizes]
    axes.plot(sizes, pipeline, marker="s", color="black", linewidth=2, label="pipeline")
    axes.plot(sizes, [pipeline[0] * p / sizes[0] for p in sizes], ":", color="grey", label="linear from the smallest")
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("people")
    axes.set_ylabel("seconds (median)")
    machine = result["machine"]
    axes.set_title(f"Pipeline time by size ({machine['cores']} cores, {machine['memory_mb'] // 1024} GiB, local mode)")
    axes.legend(fontsize=8)
    axes.grid(True, which="both", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--people", default="10000,100000,1000000", help="comma-separated sizes (people)")
    parser.add_argument(
        "--repeats", default="3", help="runs per size: one number for all, or one per size (e.g. 3,3,1)"
    )
    parser.add_argument("--seed", type=int, default=42, help="seed of the generated people (default: 42)")
    parser.add_argument("--env", default="local", help="environment of the smaller sizes (default: local)")
    parser.add_argument("--large-env", default="large", help="environment of sizes at or above --large-from")
    parser.add_argument("--large-from", type=int, default=500_000, help="people from which --large-env is used")
    parser.add_argument("--work", type=Path, default=HERE / "work", help="where the lakehouses are built")
    parser.add_argument("--results", type=Path, default=HERE / "results", help="results folder")
    parser.add_argument(
        "--through",
        choices=STAGES,
        help="stop after this stage (the run so far is kept in its lakehouse's bench-run.json); go on with --resume",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="go on with each size's saved run instead of starting afresh (a finished run of that repeat is reused)",
    )
    parser.add_argument(
        "--render-only", action="store_true", help="re-render the Markdown and chart from the results JSON"
    )
    parser.add_argument(
        "--merge",
        type=Path,
        nargs="+",
        metavar="JSON",
        help="combine the runs of these results files (sizes measured in different sittings) into --results",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    results_file = args.results / "scale-bench.json"
    if args.render_only:
        result = json.loads(results_file.read_text(encoding="utf-8"))
    elif args.merge:
        result = merged([json.loads(path.read_text(encoding="utf-8")) for path in args.merge])
    else:
        sizes = [int(p) for p in args.people.split(",")]
        repeats = [int(r) for r in args.repeats.split(",")]
        if len(repeats) == 1:
            repeats *= len(sizes)
        if len(repeats) != len(sizes):
            parser.error(f"--repeats names {len(repeats)} counts for {len(sizes)} sizes")
        load_before = os.getloadavg()
        runs = []
        for people, count in zip(sizes, repeats, strict=True):
            env = args.large_env if people >= args.large_from else args.env
            for repeat in range(1, count + 1):
                run = run_size(
                    people, args.seed, env, args.work.resolve(), repeat, resume=args.resume, through=args.through
                )
                if run is None:
                    log.info("no results written: the run stopped after %s", args.through)
                    return 0
                runs.append(run)
        result = {"runs": runs, "machine": machine_info(load_before)}
        result["summary"] = medians(runs)
        result["finished_at"] = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    if not args.render_only:
        args.results.mkdir(parents=True, exist_ok=True)
        results_file.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    (args.results / "scale-bench.md").write_text(render(result), encoding="utf-8")
    chart(result, args.results / "scale-bench.png")
    print(render(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
