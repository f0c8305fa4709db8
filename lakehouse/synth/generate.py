"""`generate`: one synthetic delivery of every feed into landing, plus the ground truth to evaluate linkage."""

from __future__ import annotations

import logging
import math
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import reduce

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakehouse.config import FeedConfig, Settings, SynthSettings
from lakehouse.landing import store_for, write_manifest
from lakehouse.synth.catalog import feed_spec
from lakehouse.synth.context import FeedContext
from lakehouse.synth.draws import Draws
from lakehouse.synth.keys import MAX_PEOPLE
from lakehouse.synth.landing import write_files
from lakehouse.synth.people import build_people, donor_id, shared_ssn_hubs
from lakehouse.synth.reference import Reference, load_reference
from lakehouse.synth.render import csv_header, render_lines
from lakehouse.synth.wages import FIRST_QUARTER_INDEX

logger = logging.getLogger(__name__)

PEOPLE_PER_PARTITION = 50_000
FEED_THREADS = 4
DELIVERY_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class FeedResult:
    """One delivery written: its folder, data rows (defective rows included) and file names."""

    partner: str
    feed: str
    path: str
    rows: int
    files: tuple[str, ...]


@dataclass(frozen=True)
class GenerateResult:
    """Everything `generate` wrote: one delivery per feed, the ground truth and the people table."""

    delivery_id: str
    people: int
    seed: int
    feeds: tuple[FeedResult, ...]
    ground_truth: str
    people_path: str
    seconds: float


def default_delivery_id(seed: int) -> str:
    """A new delivery id: UTC time of the call and the seed, e.g. 20250101T120000Z-s42."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-s{seed}"


def people_path(settings: Settings) -> str:
    """Where the true-people diagnostics table goes: `people` beside the ground truth (outside landing)."""
    truth = settings.storage.path("ground_truth").rstrip("/")
    parent = truth.rsplit("/", 1)[0] if "/" in truth else settings.storage.root.rstrip("/")
    return f"{parent}/people"


def check_arguments(people: int, seed: int, delivery_id: str, synth: SynthSettings) -> None:
    """Refuse bad arguments with a ValueError that says what is wrong."""
    if isinstance(people, bool) or not isinstance(people, int) or not 1 <= people <= MAX_PEOPLE:
        raise ValueError(f"people must be an integer from 1 to {MAX_PEOPLE:,}, got {people!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    if not DELIVERY_ID.match(delivery_id):
        raise ValueError(f"delivery_id must be letters, digits, '.', '_' or '-', got {delivery_id!r}")
    if synth.first_birth_year > synth.last_birth_year:
        raise ValueError("synth.first_birth_year is after synth.last_birth_year")
    if not FIRST_QUARTER_INDEX // 4 <= synth.first_wage_year <= synth.last_data_year:
        raise ValueError(f"synth.first_wage_year must be from {FIRST_QUARTER_INDEX // 4} to synth.last_data_year")
    if not synth.first_data_year <= synth.last_data_year:
        raise ValueError("synth.first_data_year is after synth.last_data_year")
    if not 0 <= synth.bad_row_rate < 1:
        raise ValueError(f"synth.bad_row_rate must be in [0, 1), got {synth.bad_row_rate}")
    if synth.partitions < 0:
        raise ValueError(f"synth.partitions must be 0 (automatic) or more, got {synth.partitions}")
    if synth.files_per_feed < 1 or synth.rows_per_file < 1:
        raise ValueError("synth.files_per_feed and synth.rows_per_file must be at least 1")


def file_count(people: int, rows_per_person: float, synth: SynthSettings) -> int:
    """Files for a feed: at least files_per_feed, more when the expected rows exceed rows_per_file each."""
    expected = people * rows_per_person
    return max(synth.files_per_feed, math.ceil(expected / synth.rows_per_file))


def generator_session(spark: SparkSession) -> SparkSession:
    """A session sharing `spark`'s context with the generator's own SQL settings.

    The generator's projections (dozens of hash draws per column) are too large for whole-stage code
    generation: Spark would try, fail with "code grows beyond 64 KB" and fall back, per query. Compiling
    each operator on its own works at once. The caller's session keeps its settings.
    """
    session = spark.newSession()
    session.conf.set("spark.sql.codegen.wholeStage", "false")
    # One read partition per staged people file (files are never packed together): the people are
    # generated in `partitions` slices and every feed keeps that parallelism.
    split_bytes = session.conf.get("spark.sql.files.maxPartitionBytes") or "128m"
    session.conf.set("spark.sql.files.openCostInBytes", split_bytes)
    return session


def generate(
    spark: SparkSession, settings: Settings, people: int, seed: int, delivery_id: str | None = None
) -> GenerateResult:
    """Generate `people` synthetic people and write one delivery of every configured feed into landing.

    Each feed's delivery goes to `<landing>/<partner>/<feed>/<delivery_id>/` (data files and `_manifest.json`);
    the ground truth (partner, feed, record_key, person_key for every data row) replaces the Parquet dataset
    at `storage.ground_truth`, and the true people (attributes and hard cases) the `people` dataset beside
    it. The same seed and people give byte-identical data files.

    The people and each feed's rendered rows are staged as Parquet under `storage.checkpoints` (removed at
    the end): later jobs then read short plans instead of carrying the generator's lineage in every task.
    """
    started = time.monotonic()
    spark = generator_session(spark)
    synth = settings.synth
    delivery = delivery_id or default_delivery_id(seed)
    check_arguments(people, seed, delivery, synth)
    feeds = settings.feeds()
    specs = {feed.key: feed_spec(feed.key) for feed in feeds}
    landing = settings.storage.path("landing").rstrip("/")
    store = store_for(spark, landing)
    folders = {feed.key: f"{landing}/{feed.partner}/{feed.name}/{delivery}" for feed in feeds}
    existing = [folder for folder in folders.values() if store.exists(folder)]
    if existing:
        raise FileExistsError(f"delivery {delivery} already exists in landing: {existing[0]}")

    ref = load_reference()
    draws = Draws(seed)
    partitions = synth.partitions or max(
        spark.sparkContext.defaultParallelism, math.ceil(people / PEOPLE_PER_PARTITION)
    )
    staging = f"{settings.storage.path('checkpoints').rstrip('/')}/synth/{delivery}"
    staging_store = store_for(spark, staging)
    try:
        build_people(spark, people, seed, synth=synth, ref=ref, partitions=partitions).write.mode("overwrite").parquet(
            f"{staging}/people"
        )
        population = spark.read.parquet(f"{staging}/people")
        logger.info("generated %d people (seed %d) in %d partitions", people, seed, partitions)

        def write_feed(feed: FeedConfig) -> FeedResult:
            feed_started = time.monotonic()
            spec = specs[feed.key]
            n_files = file_count(people, spec.rows_per_person, synth)
            context = FeedContext(population, draws, ref, synth, seed, feed)
            lines = render_lines(
                spec.build(context),
                feed,
                draws=draws,
                key_prefix=spec.key_prefix,
                bad_row_rate=synth.bad_row_rate,
                n_files=n_files,
            )
            staged = f"{staging}/lines/{feed.key}"
            lines.write.mode("overwrite").parquet(staged)
            header = csv_header(feed) if feed.has_header_line else None
            files = write_files(
                spark,
                spark.read.parquet(staged),
                feed,
                folder=folders[feed.key],
                n_files=n_files,
                header=header,
                store=store,
            )
            write_manifest(store, folders[feed.key], feed, delivery, files)
            result = FeedResult(
                partner=feed.partner,
                feed=feed.name,
                path=folders[feed.key],
                rows=sum(int(f["rows"]) for f in files),
                files=tuple(str(f["name"]) for f in files),
            )
            logger.info(
                "generated %s/%s: %d rows in %d files (%.1f s)",
                feed.partner,
                feed.name,
                result.rows,
                len(result.files),
                time.monotonic() - feed_started,
            )
            return result

        # Feeds are independent Spark jobs: running a few at once keeps both the driver (planning, code
        # generation) and the executors busy. The output does not depend on the order.
        with ThreadPoolExecutor(max_workers=min(FEED_THREADS, len(feeds))) as pool:
            results = list(pool.map(write_feed, feeds))
        truth_path = settings.storage.path("ground_truth")
        truth = [
            spark.read.parquet(f"{staging}/lines/{feed.key}").select(
                F.lit(feed.partner).alias("partner"), F.lit(feed.name).alias("feed"), "record_key", "person_key"
            )
            for feed in feeds
        ]
        reduce(DataFrame.unionByName, truth).write.mode("overwrite").parquet(truth_path)
        diagnostics = people_path(settings)
        true_people(spark, population, draws=draws, ref=ref, people=people, synth=synth).write.mode(
            "overwrite"
        ).parquet(diagnostics)
    finally:
        staging_store.delete(staging)
    seconds = time.monotonic() - started
    logger.info("generated delivery %s for %d people (seed %d) in %.1f s", delivery, people, seed, seconds)
    return GenerateResult(delivery, people, seed, tuple(results), truth_path, diagnostics, seconds)


def true_people(
    spark: SparkSession, population: DataFrame, *, draws: Draws, ref: Reference, people: int, synth: SynthSettings
) -> DataFrame:
    """One row per true person: identity, life-course summary and the hard cases they belong to.

    The owners of shared SSNs (one per hub, see `people.with_identifiers`) come from a small broadcast
    table of the hubs.
    """
    hubs = shared_ssn_hubs(people, synth.shared_ssn_rate)
    donors = (
        spark.range(hubs)
        .select(donor_id(draws, F.col("id").cast("int"), people).alias("person_id"))
        .distinct()
        .withColumn("is_ssn_owner_shared", F.lit(True))
    )
    with_donors = population.join(F.broadcast(donors), on="person_id", how="left")
    surname = ref.surname(F.col("surname_row"))
    second = ref.surname(F.col("surname2_row"))
    hard_cases = F.filter(
        F.array(
            F.when(F.col("is_twin"), F.lit("twin")),
            F.when(~F.col("has_ssn"), F.lit("no_ssn")),
            F.when(F.col("is_ssn_sharer") | F.col("is_ssn_owner_shared").isNotNull(), F.lit("shared_ssn")),
            F.when(F.col("married_year").isNotNull(), F.lit("name_change")),
            F.when(F.col("surname2_row").isNotNull(), F.lit("compound_surname")),
            F.when(F.col("ssid2_year").isNotNull(), F.lit("second_ssid")),
        ),
        lambda case: case.isNotNull(),
    )
    return with_donors.select(
        "person_key",
        "person_id",
        "sex",
        "birth_date",
        ref.first_name(F.col("first_row")).alias("first_name"),
        ref.first_name(F.col("middle_row")).alias("middle_name"),
        F.when(second.isNull(), surname).otherwise(F.concat_ws(" ", surname, second)).alias("last_name"),
        ref.surname(F.col("married_surname_row")).alias("spouse_surname"),
        "married_year",
        "married_style",
        "race_ethnicity",
        ref.counties.at("county_code", F.col("county_0")).alias("home_county_code"),
        "has_ssn",
        F.col("ssn_own").alias("ssn"),
        "ssn_used",
        "is_ssn_sharer",
        F.coalesce(F.col("is_ssn_owner_shared"), F.lit(False)).alias("is_ssn_owner_shared"),
        "ssid",
        "ssid2",
        "ssid2_year",
        "is_twin",
        F.when(F.col("is_twin"), F.concat(F.lit("P"), F.lpad(F.col("twin_person_id").cast("string"), 10, "0"))).alias(
            "twin_person_key"
        ),
        "is_sed",
        "el_at_entry",
        "in_k12",
        "is_hs_completer",
        "grad_year",
        "completion_type",
        "is_a_g",
        "destination",
        "ccc_award",
        "ug_segment",
        "ug_award",
        "gr_segment",
        "gr_award",
        "ba_year",
        "has_medi_cal",
        "has_dss",
        hard_cases.alias("hard_cases"),
    )
