"""BI query benchmark: the latency of a dashboard's queries over the BI endpoint (Spark Thrift server, JDBC).

Starts the endpoint on the lakehouse of --env (`lakehouse serve-bi`, the same server BI tools reach), then
runs the query set of bench/bi/queries.sql through beeline, Hive's JDBC client, in one connection: one
warm-up round (a dashboard's first paint after the server starts is not what users wait for on every
click), then --repeats measured rounds. Latency is what beeline measures per statement: from sending it to
the last row received, over the network. The endpoint is stopped at the end, also on failure.

With --people N the lakehouse is built first, once, under bench/bi/work/people-<N>-seed-<S>/ (its own storage
root: `lakehouse generate`, then each stage of `lakehouse run` on its own, as subprocesses; a stamp file records
each finished step with its time, so an interrupted build resumes); without it the lakehouse of --env is read
as it is (`make run`'s). At a million people, use --env large (more memory, more shuffle partitions).

The parameters of the queries (a cohort year with its outcomes observed, the county with the most
graduates, a wage year) are chosen from the data by a first query, so the set runs on any lakehouse.

Results: <--results>/bi-bench.json (every latency, the table sizes, the machine) and bi-bench.md.

    .venv/bin/python bench/bi/run_bench.py --env local --repeats 5 --results bench/bi/results/default
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
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
from measure import machine_info  # noqa: E402

from lakehouse.bi import beeline, free_port, read_state, serve, stop  # noqa: E402
from lakehouse.config import load_settings  # noqa: E402

log = logging.getLogger("bi_bench")

QUERIES_FILE = HERE / "queries.sql"
ELAPSED = re.compile(r"(\d+|No) rows? selected \(([\d.]+) seconds\)")
PARAMETERS_QUERY = """
SELECT
  (SELECT max(cohort_year) FROM {public}.student_pathways
    WHERE geography_level = 'state' AND group_dimension = 'all' AND n_employed_yr1 IS NOT NULL) AS cohort,
  (SELECT county_code FROM {gold}.mart_student_pathways
    WHERE geography_level = 'county' AND group_dimension = 'all'
    GROUP BY county_code ORDER BY sum(n_graduates) DESC, county_code LIMIT 1) AS county,
  (SELECT max(year) - 1 FROM {gold}.fact_quarterly_wages) AS wage_year,
  (SELECT count(*) FROM {gold}.dim_person) AS people
"""
SIZED_TABLES = (
    "dim_person",
    "fact_k12_graduation",
    "fact_postsecondary_enrollment",
    "fact_quarterly_wages",
    "mart_student_pathways",
)


def parse_queries(text: str) -> list[tuple[str, str]]:
    """(name, statement) of every `-- name: <name>` block of queries.sql, in order."""
    queries = []
    for block in re.split(r"^-- name: ", text, flags=re.MULTILINE)[1:]:
        name, _, body = block.partition("\n")
        lines = [line for line in body.splitlines() if line.strip() and not line.lstrip().startswith("--")]
        statement = " ".join(" ".join(lines).split()).rstrip(";")
        queries.append((name.strip(), statement))
    if not queries:
        raise ValueError(f"{QUERIES_FILE} has no `-- name:` blocks")
    return queries


def run_beeline(url: str, script: str, *, timeout_s: float) -> subprocess.CompletedProcess[str]:
    """Run `script` (statements ending in ;) through beeline in one connection; fail on the first error."""
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"bi-bench-{os.getpid()}.sql"
    path.write_text(script, encoding="utf-8")
    client, environment = beeline()
    try:
        done = subprocess.run(
            [str(client), "-u", url, "--silent=false", "--outputformat=csv2", "--showHeader=false",
             "--nullemptystring=true", "--force=false", "-f", str(path)],
            capture_output=True, text=True, timeout=timeout_s, check=False,
            env=environment,
        )  # fmt: skip
    finally:
        path.unlink(missing_ok=True)
    if done.returncode != 0 or "Error:" in done.stderr:
        raise RuntimeError(f"beeline failed ({done.returncode}): {done.stderr[-3000:]}")
    return done


def query_parameters(url: str, databases: dict[str, str]) -> dict[str, Any]:
    """cohort, county, wage_year and people from the lakehouse (see PARAMETERS_QUERY)."""
    done = run_beeline(url, PARAMETERS_QUERY.format(**databases).strip() + ";\n", timeout_s=600)
    rows = [line for line in done.stdout.splitlines() if re.match(r"^[\d\"]", line.strip())]
    cohort, county, wage_year, people = next(csv_row(r) for r in rows if len(csv_row(r)) == 4)
    if not cohort or not county:
        raise RuntimeError("the lakehouse has no pathways mart with observed earnings: run the pipeline first")
    return {"cohort": int(cohort), "county": county, "wage_year": int(wage_year), "people": int(people)}


def csv_row(line: str) -> list[str]:
    return [cell.strip('"') for cell in line.strip().split(",")]


def table_sizes(url: str, gold: str) -> dict[str, int]:
    statements = "".join(f"SELECT '{t}', count(*) FROM {gold}.{t};\n" for t in SIZED_TABLES)
    done = run_beeline(url, statements, timeout_s=600)
    sizes = {}
    for line in done.stdout.splitlines():
        cells = csv_row(line)
        if len(cells) == 2 and cells[0] in SIZED_TABLES:
            sizes[cells[0]] = int(cells[1])
    return sizes


def measure(url: str, queries: list[tuple[str, str]], repeats: int) -> tuple[dict[str, list[float]], dict[str, int]]:
    """Latency in seconds of every query in every measured round (after one warm-up round), and the rows each
    query returns. Raises when a query returns no rows (its latency would say nothing about a dashboard)."""
    rounds = repeats + 1
    script = "".join(f"{statement};\n" for _round in range(rounds) for _name, statement in queries)
    started = time.perf_counter()
    done = run_beeline(url, script, timeout_s=3600)
    log.info("%d statements in %.1f s (beeline, one connection)", rounds * len(queries), time.perf_counter() - started)
    found = ELAPSED.findall(done.stdout + "\n" + done.stderr)
    if len(found) != rounds * len(queries):
        raise RuntimeError(f"expected {rounds * len(queries)} timings from beeline, found {len(found)}")
    latencies: dict[str, list[float]] = {name: [] for name, _ in queries}
    rows = {name: 0 if count == "No" else int(count) for (name, _), (count, _s) in zip(queries, found, strict=False)}
    empty = [name for name, n in rows.items() if n == 0]
    if empty:
        raise RuntimeError(f"queries returned no rows: {', '.join(empty)}")
    for i, (_count, seconds) in enumerate(found[len(queries) :]):  # the first round warms up
        latencies[queries[i % len(queries)][0]].append(float(seconds))
    return latencies, rows


def render(result: dict[str, Any]) -> str:
    sizes = result["table_rows"]
    lines = [
        f"# BI query latency: {result['label']}",
        "",
        f"{result['parameters']['people']:,} people in dim_person; "
        + ", ".join(f"{t} {n:,} rows" for t, n in sizes.items())
        + f". Machine: {result['machine']['cores']} cores, {result['machine']['memory_mb'] / 1024:.0f} GiB. "
        f"Endpoint: Spark Thrift server (`lakehouse serve-bi`), client: beeline (Hive JDBC), one connection; "
        f"{result['repeats']} measured rounds after one warm-up round. {result['finished_at']}.",
        "",
        "| query | rows | median s | min s | max s |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, seconds in result["latencies"].items():
        lines.append(
            f"| {name} | {result['rows_returned'][name]} | {statistics.median(seconds):.2f} | {min(seconds):.2f} | "
            f"{max(seconds):.2f} |"
        )
    lines += [
        "",
        f"Median dashboard query (median over the queries of each query's median): "
        f"**{result['median_query_s']:.2f} s**; slowest query's median {result['slowest_query_s']:.2f} s.",
    ]
    return "\n".join(lines) + "\n"


PIPELINE_STAGES = ("bronze", "silver", "link", "gold", "public")


def build_lakehouse(people: int, seed: int, env: str, work: Path, engine: str | None = None) -> Path:
    """The storage root of a lakehouse of `people` people, built by generate + run unless already built.

    Resumable: each step (generate, then every pipeline stage run on its own) is a subprocess, and the stamp
    file records each finished one with its time, so an interrupted build starts again at the step it was in;
    bronze itself skips the deliveries it already ingested.
    """
    root = work / f"people-{people}-seed-{seed}"
    stamp = root / "bench-data.json"
    done: dict[str, Any] = json.loads(stamp.read_text(encoding="utf-8")) if stamp.exists() else {}
    seconds: dict[str, float] = done.get("seconds", {})
    root.mkdir(parents=True, exist_ok=True)
    environment = dict(os.environ, LAKEHOUSE_STORAGE_ROOT=str(root))
    lakehouse = str(Path(sys.executable).parent / "lakehouse")
    steps = [("generate", [lakehouse, "generate", "--people", str(people), "--seed", str(seed), "--env", env])]
    link_engine = ["--engine", engine] if engine else []
    steps += [
        (stage, [lakehouse, "run", "--stages", stage, "--env", env, *(link_engine if stage == "link" else [])])
        for stage in PIPELINE_STAGES
    ]
    for step, command in steps:
        if step in seconds or (step in PIPELINE_STAGES and "pipeline" in seconds):
            log.info("lakehouse in %s: %s already done", root, step)
            continue
        started = time.perf_counter()
        log.info("building the lakehouse: %s", " ".join(command))
        subprocess.run(command, env=environment, check=True, cwd=REPO)
        seconds[step] = round(time.perf_counter() - started, 1)
        payload = {
            "people": people,
            "seed": seed,
            "env": env,
            "engine": engine or done.get("engine"),
            "seconds": seconds,
        }
        stamp.write_text(json.dumps(payload) + "\n", encoding="utf-8")
    return root


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="local", help="environment whose lakehouse is read (default: local)")
    parser.add_argument("--people", type=int, help="build (once) and read a lakehouse of this many people")
    parser.add_argument("--seed", type=int, default=42, help="seed of the generated people (default: 42)")
    parser.add_argument("--repeats", type=int, default=5, help="measured rounds of the query set (default: 5)")
    parser.add_argument("--work", type=Path, default=HERE / "work", help="where --people lakehouses are built")
    parser.add_argument("--build-only", action="store_true", help="with --people: build the lakehouse, measure nothing")
    parser.add_argument(
        "--link-engine",
        choices=["probabilistic", "deterministic"],
        help="with --people: the link stage's engine when it builds (default: conf's); the queries read gold and "
        "public, whose sizes hardly depend on it, and the exact-rule baseline builds a million people in minutes",
    )
    parser.add_argument("--label", default="default size", help="name of the run in the results")
    parser.add_argument("--results", type=Path, default=HERE / "results" / "default", help="results folder")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    if args.people:
        root = build_lakehouse(args.people, args.seed, args.env, args.work.resolve(), engine=args.link_engine)
        os.environ["LAKEHOUSE_STORAGE_ROOT"] = str(root)
    if args.build_only:
        return 0
    settings = load_settings(args.env)
    databases = {"gold": settings.databases.gold, "public": settings.databases.public}
    if read_state(settings) is not None:
        raise SystemExit("a BI endpoint is already running on this lakehouse: `make stop-bi` first")
    state = serve(settings, port=free_port())
    url = str(state["jdbc_url"])
    try:
        parameters = query_parameters(url, databases)
        log.info("parameters: %s", parameters)
        queries = [
            (name, statement.format(**databases, **parameters))
            for name, statement in parse_queries(QUERIES_FILE.read_text(encoding="utf-8"))
        ]
        sizes = table_sizes(url, databases["gold"])
        latencies, rows = measure(url, queries, args.repeats)
    finally:
        stop(settings)
    medians = [statistics.median(seconds) for seconds in latencies.values()]
    result = {
        "label": args.label,
        "env": args.env,
        "repeats": args.repeats,
        "parameters": parameters,
        "table_rows": sizes,
        "queries": dict(queries),
        "latencies": latencies,
        "rows_returned": rows,
        "median_query_s": statistics.median(medians),
        "slowest_query_s": max(medians),
        "machine": machine_info(),
        "finished_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "bi-bench.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    (args.results / "bi-bench.md").write_text(render(result), encoding="utf-8")
    print(render(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
