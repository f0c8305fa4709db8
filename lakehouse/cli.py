"""`lakehouse`: the command line of the lakehouse (and the body of every jobs/<stage>.py).

Exit codes scripts can rely on: 0 done, 1 a stage failed (the message says which and why),
2 bad usage or configuration (the message names the flag, file or key).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from lakehouse.bi import BiError
from lakehouse.config import ConfigError, Settings, load_settings
from lakehouse.pipeline import STAGES, PipelineError, parse_stages, run_pipeline
from lakehouse.progress import DEFAULT_SECONDS as DEFAULT_PROGRESS_SECONDS
from lakehouse.progress import stage_progress

logger = logging.getLogger(__name__)

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
KEYED_STAGES = {"silver", "link"}
"""Stages that tokenize identifiers with the HMAC key (a run that includes one refuses to start without it)."""


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--env",
        default="local",
        help="environment overlay conf/env/<env>.yaml (default: local, Spark in local mode, tables in ./data)",
    )
    parser.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="default: INFO"
    )


def _progress(parser: argparse.ArgumentParser) -> None:
    """--progress, for the commands that run long stages."""
    parser.add_argument(
        "--progress",
        type=float,
        default=DEFAULT_PROGRESS_SECONDS,
        metavar="SECONDS",
        help="while a stage runs, log its elapsed time and the rows read and written so far every SECONDS "
        f"(default: {DEFAULT_PROGRESS_SECONDS:g}; 0: never)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lakehouse",
        description=(
            "Cradle-to-career lakehouse: partner deliveries -> bronze -> silver -> entity resolution (mpi) -> "
            "gold -> public Delta tables, on Spark."
        ),
        epilog="Every command takes --env (conf/env/<env>.yaml). Exit codes: 0 ok, 1 stage failed, 2 usage/config.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    gen = sub.add_parser(
        "generate",
        help="write synthetic deliveries for all nine partners into landing, plus ground truth",
        description=(
            "Generate synthetic partner deliveries (one per feed, all nine partners) into the landing folder, "
            "with manifests, and a ground-truth file outside landing that the pipeline only uses to evaluate "
            "linkage. Deterministic for a seed."
        ),
    )
    gen.add_argument("--people", type=int, help="number of true people (default: synth.people in conf)")
    gen.add_argument("--seed", type=int, help="random seed (default: synth.seed in conf)")
    _common(gen)

    deliver = sub.add_parser(
        "deliver",
        help="put a partner's files into landing as one delivery, with its manifest (S3 or a local folder)",
        description=(
            "Deliver files as one delivery of a partner's feed: each file's size, SHA-256 and data rows go into "
            "_manifest.json, the files are uploaded to <landing>/<partner>/<feed>/<delivery-id>/ (boto3 for an "
            "s3a:// landing, with credentials from the standard AWS chain; a copy for a local one) and the "
            "manifest last. The next `lakehouse run` ingests it."
        ),
    )
    deliver.add_argument("--partner", required=True, help="partner name, as in conf/partners/<partner>.yaml")
    deliver.add_argument("--feed", required=True, help="feed name of that partner")
    deliver.add_argument("--delivery-id", help="id of the delivery (default: d<UTC time>, e.g. d20261129T114501Z)")
    deliver.add_argument(
        "--replaces",
        metavar="DELIVERY_ID",
        help="id of an earlier delivery of the feed that this one corrects: its rows give way to these ones",
    )
    deliver.add_argument("files", nargs="+", type=Path, metavar="FILE", help="data files of the delivery")
    _common(deliver)

    run = sub.add_parser(
        "run",
        help="run the pipeline (all stages, or --stages)",
        description=f"Run pipeline stages in order: {', '.join(STAGES)}. Each stage can be re-run on its own.",
    )
    run.add_argument("--stages", default="all", help=f"comma-separated subset of: {','.join(STAGES)} (default: all)")
    run.add_argument(
        "--retrain",
        action="store_true",
        help="link stage: train a new linkage model on this run's records, register it in MLflow and make it the "
        "version production runs use (default: score with the registered version; train only if there is none)",
    )
    run.add_argument(
        "--full-relink",
        action="store_true",
        help="link stage: link every record again instead of only what changed since the previous run",
    )
    run.add_argument(
        "--feed",
        action="append",
        metavar="PARTNER/FEED",
        help="bronze stage: ingest only the deliveries of this feed (repeat for more; default: every feed), so that "
        "partners' ingests can run as jobs of their own, at the same time (with a shared metastore)",
    )
    run.add_argument(
        "--engine",
        choices=["probabilistic", "deterministic"],
        help="link stage: the linkage engine (default: engine in conf/matching.yaml); deterministic is the exact-rule "
        "baseline, much cheaper and much less accurate",
    )
    _common(run)
    _progress(run)

    link = sub.add_parser(
        "link",
        help="deduplicate one CSV/Parquet file, or link two files to each other, with the linkage engine",
        description=(
            "Deduplicate one file (CSV with a header, or Parquet) or, with two --input, link them to each other "
            "(pairs across the two files only). MAPPING.yaml maps the file's columns to the standard attributes "
            "(record_id required; first_name, middle_name, last_name, dob (a column, or {column, format}), ssn, "
            "other_id, sex, street_number, address_line, city, zip, state, phone, email). Writes "
            "OUT/clusters.parquet (source, record_id, cluster_id) and OUT/pairs.parquet (source_l, record_id_l, "
            "source_r, record_id_r, match_weight, match_probability). Trains a model on the input unless --model "
            "names a registered one."
        ),
    )
    link.add_argument(
        "--input", action="append", required=True, type=Path, metavar="FILE", help="input file; give it twice to link"
    )
    link.add_argument("--mapping", required=True, type=Path, help="MAPPING.yaml: attribute -> column of the input")
    link.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder (created)")
    link.add_argument("--threshold", type=float, help="match probability that links two records (default: conf)")
    link.add_argument(
        "--pairs-min-probability", type=float, help="lowest probability of a pair written to pairs.parquet"
    )
    link.add_argument(
        "--model", metavar="NAME[/VERSION]", help="score with a registered model (VERSION: number or alias)"
    )
    _common(link)
    _progress(link)

    demo = sub.add_parser(
        "demo",
        help="generate a sample, run the whole pipeline and print what the tables hold (what `make run` does)",
        description="generate + run + status in one go, on the embedded local environment by default.",
    )
    demo.add_argument("--people", type=int, help="number of true people (default: synth.people in conf)")
    demo.add_argument("--seed", type=int, help="random seed (default: synth.seed in conf)")
    _common(demo)
    _progress(demo)

    status = sub.add_parser(
        "status",
        help="every table with its rows, version and location; the last pipeline runs",
        description="Show every table of every layer with its row count, Delta version and location.",
    )
    _common(status)

    history = sub.add_parser(
        "history",
        help="the Delta versions of a table: when, what operation, rows written; read any with VERSION AS OF",
        description=(
            "Show the versions of one table (DESCRIBE HISTORY): version, time, operation and its row figures, "
            'newest first. Any version can be read back: lakehouse sql "SELECT * FROM gold.dim_person VERSION '
            'AS OF 3" (within the retention that `lakehouse maintain` keeps).'
        ),
    )
    history.add_argument("table", help="catalog name, e.g. gold.dim_person or silver.person_records")
    history.add_argument("--limit", type=int, default=20, help="versions to show (default: 20)")
    _common(history)

    explain = sub.add_parser(
        "explain",
        help="why records were linked: a pair's field-by-field weights, or a person's records and their links",
        description=(
            "Explain the last link run from mpi.scored_pairs and the model it scored with (mpi.linkage_models). "
            "--pair A B: each comparison's level and weight in bits, the prior, the match weight and probability, "
            "and whether that is a link. --person ID: the person's records (record ids and partners, no "
            "identifying value) and every scored pair between them, strongest first, with its three heaviest "
            "comparisons. Without either: the weakest link of the run (the linked pair closest to the threshold)."
        ),
    )
    chosen = explain.add_mutually_exclusive_group()
    chosen.add_argument("--person", metavar="PERSON_ID", help="a person_id of mpi.crosswalk or gold.dim_person")
    chosen.add_argument("--pair", nargs=2, metavar=("RECORD_A", "RECORD_B"), help="two record_ids of mpi.crosswalk")
    explain.add_argument("--limit", type=int, default=30, help="with --person: pairs to show (default: 30)")
    _common(explain)

    maintain = sub.add_parser(
        "maintain",
        help="compact (OPTIMIZE) and vacuum every table, keeping the history that conf/base.yaml retains",
        description=(
            "For every Delta table of every layer: OPTIMIZE (bin-packing small files into larger ones), then "
            "VACUUM with maintenance.vacuum_retain_hours of conf/base.yaml (files older than that which no "
            "version within it needs are deleted; time travel reaches back that far)."
        ),
    )
    maintain.add_argument("--layers", default="all", help="comma-separated layers (default: all)")
    _common(maintain)

    analyze = sub.add_parser(
        "analyze-blocking",
        help="before linking: the pairs each blocking rule will create, its largest blocks and what it caps",
        description=(
            "Read silver.person_records, build the comparison features and report, per blocking rule of "
            "conf/matching.yaml in order: records with a complete key, blocks, pairs inside uncapped blocks, "
            "pairs the rule adds to the earlier rules', capped blocks and the sizes of its largest blocks. "
            "Writes nothing."
        ),
    )
    _common(analyze)

    serve_bi = sub.add_parser(
        "serve-bi",
        help="start the BI endpoint: a read-only Spark Thrift server (JDBC/ODBC) over gold and public",
        description=(
            "Register the gold and public tables in the endpoint's own catalog and start the Spark Thrift "
            "server (HiveServer2 protocol: BI tools' Hive or Spark SQL JDBC/ODBC drivers) in the background on "
            "HOST:PORT, read-only, with no restricted database reachable. Prints the JDBC URL; `lakehouse "
            "stop-bi` stops it. Run the pipeline first."
        ),
    )
    serve_bi.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    serve_bi.add_argument("--port", type=int, default=10000, help="port (default: 10000)")
    serve_bi.add_argument(
        "--timeout", type=float, default=180, help="seconds to wait for the server to listen (default: 180)"
    )
    serve_bi.add_argument(
        "--foreground",
        action="store_true",
        help="register, then become the server (no state file; stop it with a signal): a container's main process",
    )
    serve_bi.add_argument(
        "--state-dir",
        type=Path,
        help="with --foreground: the endpoint's catalog (default: <storage root>/bi, or .run/bi)",
    )
    _common(serve_bi)
    stop_bi = sub.add_parser(
        "stop-bi",
        help="stop the BI endpoint that serve-bi started (by its recorded pid)",
        description="Stop the Thrift server recorded by `lakehouse serve-bi` (SIGTERM, then SIGKILL after 30 s).",
    )
    _common(stop_bi)

    dictionary = sub.add_parser(
        "dictionary",
        help="write the data dictionary (docs/data-dictionary.md) from the gold and public tables and conf",
        description=(
            "Generate the data dictionary from the table and column comments of every gold and public table "
            "(as a BI tool sees them) and the definitions in conf/gold.yaml. Run the pipeline first."
        ),
    )
    dictionary.add_argument(
        "--output", default="docs/data-dictionary.md", help="file to write, '-' for stdout (default: %(default)s)"
    )
    _common(dictionary)

    sql = sub.add_parser("sql", help="run one Spark SQL statement and print its result", description="Run SQL.")
    sql.add_argument("statement", help='e.g. "SELECT * FROM gold.dim_person LIMIT 10"')
    sql.add_argument("--limit", type=int, default=50, help="rows to print (default: 50)")
    _common(sql)
    return parser


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    for noisy in ("py4j", "urllib3", "botocore", "alembic", "mlflow"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def sample_delivery_id(people: int, seed: int) -> str:
    """Delivery id of a synthetic sample: the same people and seed always name the same delivery."""
    return f"synth-s{seed}-n{people}"


def _landing_deliveries(settings: Settings) -> set[str]:
    """Delivery ids present in a local landing folder (<landing>/<partner>/<feed>/<delivery_id>/)."""
    landing = Path(settings.storage.path("landing"))
    if "://" in str(settings.storage.root) or not landing.is_dir():
        return set()
    return {p.name for p in landing.glob("*/*/*") if p.is_dir()}


def _generate(settings: Settings, people: int | None, seed: int | None, *, reuse: bool = False) -> None:
    """Generate a sample; with `reuse`, a sample already in landing with the same people and seed is kept."""
    from lakehouse.session import build_session
    from lakehouse.synth import generate

    n, s = people or settings.synth.people, settings.synth.seed if seed is None else seed
    if n <= 0:
        raise ValueError(f"--people must be positive, got {n}")
    delivery_id = sample_delivery_id(n, s)
    present = _landing_deliveries(settings)
    if reuse and present == {delivery_id}:
        logger.info("sample %s is already in landing (same people and seed): not generating it again", delivery_id)
        return
    others = present - {delivery_id}
    if reuse and others:
        raise ValueError(
            f"landing already holds another sample ({', '.join(sorted(others))}); bronze keeps every delivery, so "
            f"a second sample would mix two populations. Run `make clean-data` (removes {settings.storage.root}) first."
        )
    spark = build_session(settings)
    start = time.perf_counter()
    result = generate(spark, settings, people=n, seed=s, delivery_id=delivery_id)
    rows = sum(f.rows for f in result.feeds)
    logger.info(
        "generated delivery %s: %d people, %d feeds, %d rows in %.1f s; landing %s; ground truth %s",
        result.delivery_id,
        n,
        len(result.feeds),
        rows,
        time.perf_counter() - start,
        settings.storage.path("landing"),
        result.ground_truth,
    )


def _deliver(settings: Settings, args: argparse.Namespace) -> None:
    from lakehouse.landing import deliver

    delivery = deliver(
        settings, args.partner, args.feed, args.files, delivery_id=args.delivery_id, replaces=args.replaces
    )
    correction = f", replacing {args.replaces}" if args.replaces else ""
    print(
        f"delivered {args.partner}/{args.feed} {delivery.delivery_id}{correction}: {len(args.files)} file(s), "
        f"{delivery.rows} data rows, to {delivery.folder}"
    )


def _run(settings: Settings, stages: Sequence[str], progress: float = DEFAULT_PROGRESS_SECONDS) -> None:
    from lakehouse.session import build_session

    spark = build_session(settings)
    result = run_pipeline(spark, settings, stages, progress_seconds=progress)
    for stage in result.stages:
        logger.info("%-7s %7.1f s", stage.stage, stage.seconds)
        for name, outcome in stage.figures.get("expectations", {}).items():
            logger.info("        expectation %s: %s", name, outcome)
    logger.info("pipeline run %s finished in %.1f s", result.run_id, result.seconds)


def _status(settings: Settings) -> None:
    from lakehouse.session import build_session
    from lakehouse.summary import render

    spark = build_session(settings)
    print(render(spark, settings))


def _history(settings: Settings, table: str, limit: int) -> None:
    from lakehouse.session import build_session
    from lakehouse.tables import table_history

    spark = build_session(settings)
    for row in table_history(spark, table, limit):
        print(row)


def _explain(settings: Settings, person: str | None, pair: Sequence[str] | None, limit: int) -> None:
    from lakehouse import notebook as nb

    spark = nb.session(settings.env)
    model = nb.linkage_model(spark).model
    threshold = nb.link_threshold(spark)
    if person is not None:
        records = nb.person_records(spark, person)
        print(f"person {person}: {len(records)} records from {records['partner'].nunique()} partners")
        print(records.to_string(index=False))
        pairs = nb.person_pairs(spark, model, list(records["record_id"]))
        linked = int(pairs["linked"].sum())
        print(f"\n{len(pairs)} scored pairs between them, {linked} at or above the threshold {threshold}:")
        print(pairs.head(limit).to_string(index=False) if len(pairs) else "(none: a single record, or no pair blocked)")
        if len(pairs) > limit:
            print(f"... and {len(pairs) - limit} weaker pairs (--limit N shows more)")
        print("\nEach pair's weights in full: lakehouse explain --pair RECORD_A RECORD_B")
        return
    explanation = nb.explain_pair(spark, model, *pair) if pair else nb.explain_pair(spark, model)
    verdict = "a link" if explanation.match_probability >= threshold else "not a link"
    print(
        f"{explanation.record_id_l} ({explanation.partner_l}) and {explanation.record_id_r} "
        f"({explanation.partner_r}), blocked by rule {explanation.rule}:"
    )
    print(explanation.frame().to_string(index=False, float_format=lambda w: f"{w:+.2f}"))
    print(f"probability {explanation.match_probability:.4f}: {verdict} (threshold {threshold})")


def _maintain(settings: Settings, layers: str) -> None:
    from lakehouse.session import build_session
    from lakehouse.tables import maintain_tables

    chosen = list(settings.databases.all()) if layers == "all" else [x.strip() for x in layers.split(",")]
    unknown = sorted(set(chosen) - set(settings.databases.all()))
    if unknown:
        raise ValueError(f"unknown layer(s) {', '.join(unknown)}: choose from {', '.join(settings.databases.all())}")
    spark = build_session(settings)
    databases = [getattr(settings.databases, layer) for layer in chosen]
    for line in maintain_tables(spark, databases, settings.maintenance.vacuum_retain_hours):
        print(line)


def _dictionary(settings: Settings, output: str) -> None:
    from lakehouse.dictionary import data_dictionary
    from lakehouse.session import build_session

    text = data_dictionary(build_session(settings), settings)
    if output == "-":
        print(text, end="")
        return
    Path(output).write_text(text, encoding="utf-8")
    logger.info("wrote the data dictionary to %s", output)


def _analyze_blocking(settings: Settings) -> None:
    from lakehouse.er.blocking import analyze_blocking, render_analysis
    from lakehouse.er.features import comparison_features
    from lakehouse.er.linking import matching_settings
    from lakehouse.session import build_session
    from lakehouse.tables import table_exists

    spark = build_session(settings)
    source = settings.table("silver", "person_records")
    if not table_exists(spark, source):
        raise ValueError(f"{source} does not exist: run `lakehouse run --stages bronze,silver` first")
    model = matching_settings(settings).model
    features = comparison_features(
        spark.read.table(source),
        max_birth_dates_per_identifier=model.max_birth_dates_per_identifier,
        max_broadcast_lookup_rows=model.max_broadcast_lookup_rows,
    ).localCheckpoint(eager=True)
    print(render_analysis(analyze_blocking(features, matching_settings(settings).blocking)))


def _link_files(settings: Settings, args: argparse.Namespace) -> None:
    from lakehouse.er.link_files import LinkInputError, link_files, load_mapping, source_names
    from lakehouse.session import build_session

    load_mapping(args.mapping)  # the cheap checks first, before Spark starts
    source_names(args.input)
    for path in args.input:
        if not path.exists():
            raise LinkInputError(f"{path}: no such file")
    model = None
    if args.model:
        from lakehouse.er.registry import ModelRegistry

        registered = ModelRegistry(settings).resolve(args.model)
        if registered is None:  # resolve raises on an explicit reference; kept for the type checker
            raise ValueError(f"no registered model {args.model!r}")
        model = registered.model
        logger.info("scoring with registered model %s/%s", registered.name, registered.version)
    spark = build_session(settings)
    start = time.perf_counter()
    with stage_progress(spark, "link", args.progress):
        result = link_files(
            spark,
            settings,
            args.input,
            args.mapping,
            args.out,
            threshold=args.threshold,
            pairs_min_probability=args.pairs_min_probability,
            model=model,
        )
    print(
        f"linked {result.n_records:,} records into {result.n_clusters:,} clusters in "
        f"{time.perf_counter() - start:.1f} s ({result.n_candidate_pairs:,} candidate pairs, "
        f"model {'trained on the input' if result.trained else args.model}, threshold {result.threshold})\n"
        f"  {result.clusters_path}\n  {result.pairs_path} ({result.n_pairs_written:,} pairs)"
    )


def _sql(settings: Settings, statement: str, limit: int) -> None:
    from lakehouse.session import build_session

    spark = build_session(settings)
    spark.sql(statement).show(limit, truncate=False)


def _serve_bi(settings: Settings, host: str, port: int, timeout: float) -> None:
    from lakehouse.bi import serve

    state = serve(settings, host=host, port=port, timeout_s=timeout)
    tables = list(state["tables"])  # type: ignore[call-overload]
    print(f"BI endpoint listening on {host}:{port} (pid {state['pid']}, log {state['log']})")
    print(f"  JDBC URL: {state['jdbc_url']}   (no user or password; the Hive or Spark SQL driver)")
    print(f"  {len(tables)} tables: {', '.join(tables)}")
    print("  stop it with `lakehouse stop-bi` (or `make stop-bi`)")


def _stop_bi(settings: Settings) -> None:
    from lakehouse.bi import stop

    pid = stop(settings)
    print("no BI endpoint was running" if pid is None else f"BI endpoint (pid {pid}) stopped")


def with_feeds(settings: Settings, keys: Sequence[str]) -> Settings:
    """The settings with bronze limited to the feeds `keys` (partner/feed), each checked against conf/partners."""
    for key in keys:
        partner, _, feed = key.partition("/")
        try:
            settings.feed(partner, feed)
        except KeyError:
            known = ", ".join(f"{f.partner}/{f.name}" for f in settings.feeds())
            raise ConfigError(f"--feed {key}: no such feed (known: {known})") from None
    return dataclasses.replace(settings, bronze=dataclasses.replace(settings.bronze, feeds=tuple(keys)))


def with_link_options(
    settings: Settings,
    *,
    retrain: bool,
    full_relink: bool,
    engine: Literal["probabilistic", "deterministic"] | None = None,
) -> Settings:
    """The settings with matching.registry.retrain, a full relink (incremental off) and/or another engine."""
    matching = settings.matching
    if matching is None:
        raise ConfigError("conf/matching.yaml was not loaded")
    if engine is not None:
        matching = dataclasses.replace(matching, engine=engine)
    if retrain:
        matching = dataclasses.replace(matching, registry=dataclasses.replace(matching.registry, retrain=True))
    if full_relink:
        matching = dataclasses.replace(matching, incremental=False)
    return dataclasses.replace(settings, matching=matching)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.log_level)
    try:
        settings = load_settings(env=args.env)
        if args.command == "generate":
            _generate(settings, args.people, args.seed)
        elif args.command == "deliver":
            _deliver(settings, args)
        elif args.command == "run":
            settings = with_link_options(
                settings, retrain=args.retrain, full_relink=args.full_relink, engine=args.engine
            )
            if args.feed:
                settings = with_feeds(settings, args.feed)
            stages = parse_stages(args.stages)
            if set(stages) & KEYED_STAGES:
                settings.security.hmac_key()  # refuse to start without the key, not at the silver stage
            _run(settings, stages, args.progress)
        elif args.command == "link":
            _link_files(settings, args)
        elif args.command == "demo":
            settings.security.hmac_key()
            _generate(settings, args.people, args.seed, reuse=True)
            _run(settings, STAGES, args.progress)
            _status(settings)
        elif args.command == "status":
            _status(settings)
        elif args.command == "history":
            _history(settings, args.table, args.limit)
        elif args.command == "explain":
            _explain(settings, args.person, args.pair, args.limit)
        elif args.command == "maintain":
            _maintain(settings, args.layers)
        elif args.command == "dictionary":
            _dictionary(settings, args.output)
        elif args.command == "analyze-blocking":
            _analyze_blocking(settings)
        elif args.command == "sql":
            _sql(settings, args.statement, args.limit)
        elif args.command == "serve-bi":
            if args.foreground:
                from lakehouse.bi import serve_foreground

                serve_foreground(settings, host=args.host, port=args.port, state_dir=args.state_dir)
            if args.state_dir is not None:
                raise ValueError(
                    "--state-dir goes with --foreground (stop-bi finds a background server in its default folder)"
                )
            _serve_bi(settings, args.host, args.port, args.timeout)
        elif args.command == "stop-bi":
            _stop_bi(settings)
    except BiError as exc:
        print(f"lakehouse {args.command}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except (ConfigError, ValueError, FileExistsError) as exc:
        print(f"lakehouse {args.command}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except PipelineError as exc:
        print(f"lakehouse {args.command}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def job_main(stages: Sequence[str] | None, argv: Sequence[str] | None = None) -> int:
    """Body of jobs/<stage>.py: `--env` and, for the pipeline job, `--stages`; runs under spark-submit."""
    parser = argparse.ArgumentParser(description=f"Run pipeline stage(s) {', '.join(stages or STAGES)}.")
    _common(parser)
    _progress(parser)
    if stages is None:
        parser.add_argument("--stages", default="all", help=f"comma-separated subset of {','.join(STAGES)}")
    args = parser.parse_args(argv)
    configure_logging(args.log_level)
    try:
        settings = load_settings(env=args.env)
        _run(settings, list(stages) if stages is not None else parse_stages(args.stages), args.progress)
    except (ConfigError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except PipelineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def generate_job_main(argv: Sequence[str] | None = None) -> int:
    """Body of jobs/generate.py."""
    return main(["generate", *(argv if argv is not None else sys.argv[1:])])


if __name__ == "__main__":
    sys.exit(main())
