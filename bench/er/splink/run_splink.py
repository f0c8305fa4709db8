"""Splink baseline for the entity-resolution benchmark.

Deduplicates a table of person records with Splink (Fellegi-Sunter model trained without labels) on
either the DuckDB or the Spark backend, and writes the clusters and the timings of each step.
Runs inside the separate virtualenv made by setup.sh (.venv-splink), e.g.

    .venv-splink/bin/python bench/er/splink/run_splink.py \
        --input records.parquet --backend duckdb --out /tmp/splink-duckdb --self-check

Input: a parquet file (or a directory of parquet files) with one row per record and the columns
record_id, partner, first_name, middle_name, last_name, birth_date, gender, zip5, ssn_token,
ssid_token and true_person. true_person is never given to Splink: it is read again only by
--self-check, after the clusters have been written.

Output, in --out: clusters.parquet (record_id, cluster_id; one row per input record, singletons
included), timings.json (sizes, seconds per step, peak memory, machine) and model.json (Splink's
trained model, for inspection).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import psutil
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import splink
import splink.comparison_level_library as cll
import splink.comparison_library as cl
from splink import ColumnExpression, Linker, SettingsCreator, block_on
from splink.blocking_analysis import count_comparisons_from_blocking_rules
from splink.blocking_rule_library import CustomRule

# ProcessTreeMonitor and Stopwatch live in bench/er/measure.py, shared with the harness and our engine's runner.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from measure import ProcessTreeMonitor, Stopwatch

if TYPE_CHECKING:
    from pyspark.sql import SparkSession
    from splink.internals.blocking_rule_creator import BlockingRuleCreator
    from splink.internals.comparison_creator import ComparisonCreator
    from splink.internals.comparison_level_creator import ComparisonLevelCreator
    from splink.internals.splink_dataframe import SplinkDataFrame

log = logging.getLogger("run_splink")

Backend = Literal["duckdb", "spark"]

# Columns given to Splink. `partner` is not a matching field, and `true_person` is the ground truth,
# which must never reach training or prediction.
MODEL_COLUMNS = [
    "record_id",
    "first_name",
    "middle_name",
    "last_name",
    "birth_date",
    "gender",
    "zip5",
    "ssn_token",
    "ssid_token",
]

# Pairs scoring below this are dropped by predict(); clustering then applies --threshold.
PREDICT_THRESHOLD = 0.5

# Assumed recall of the deterministic rules used to estimate the prior match probability, judged from
# each partner's completeness (not from the ground truth). It cannot be high: one extract (cde) has the
# student id but no SSN, another (edd) the SSN but no birth date and often only a first initial, so
# many cross-agency pairs of the same person share none of these keys.
DETERMINISTIC_RECALL = 0.6

SPARK_CORES = 2
SPARK_DRIVER_MEMORY = "8g"
SPARK_SHUFFLE_PARTITIONS = 8
# As Splink's Spark guide recommends: break lineage by writing intermediate tables as parquet (its
# default), and repartition its large intermediate tables; with 8 shuffle partitions on two cores and
# small data, Splink's own default of half the shuffle partitions is kept, explicitly. ("persist" is
# lazy, so predict() is then computed inside clustering, whose iterations grow the plan until the
# driver runs out of heap: tried on the sample, it failed.)
SPARK_BREAK_LINEAGE = "parquet"
SPARK_REPARTITION = SPARK_SHUFFLE_PARTITIONS // 2


# --------------------------------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------------------------------


def _initial_level(col: str) -> cll.CustomLevel:
    """One side is a bare initial that agrees with the first letter of the other side."""
    return cll.CustomLevel(
        f"(length({col}_l) = 1 OR length({col}_r) = 1) AND substr({col}_l, 1, 1) = substr({col}_r, 1, 1)",
        label_for_charts=f"{col}: initial agrees",
    )


def name_comparison(col: str, *, initials: bool) -> cl.CustomComparison:
    """Exact (with term-frequency adjustment), Jaro-Winkler >= 0.92, >= 0.85, [initial,] else.

    The levels of the library's NameComparison with thresholds [0.92, 0.85], plus, for first names,
    a level for initials: one extract sends only the first initial, which Jaro-Winkler scores below
    0.85 ("B" vs "BOB": 0.80).
    """
    levels: list[ComparisonLevelCreator] = [
        cll.NullLevel(col),
        cll.ExactMatchLevel(col).configure(tf_adjustment_column=col),
        cll.JaroWinklerLevel(col, 0.92),
        cll.JaroWinklerLevel(col, 0.85),
    ]
    if initials:
        levels.append(_initial_level(col))
    levels.append(cll.ElseLevel())
    return cl.CustomComparison(
        output_column_name=col,
        comparison_levels=list(levels),
        comparison_description=f"{col}: exact (TF), Jaro-Winkler 0.92 / 0.85{', initial' if initials else ''}, else",
    )


def name_swap_comparison() -> cl.CustomComparison:
    """First and last name transposed between the two records (the library's ColumnsReversedLevel).

    A separate comparison, so that the first- and last-name comparisons keep their own levels; for
    pairs that are not swapped it sits in its else level, whose weight is close to zero.
    """
    return cl.CustomComparison(
        output_column_name="name_swap",
        comparison_levels=[
            cll.Or(cll.NullLevel("first_name"), cll.NullLevel("last_name")).configure(is_null_level=True),
            cll.And(
                cll.ColumnsReversedLevel("first_name", "last_name", symmetrical=True),
                cll.CustomLevel("first_name_l <> last_name_l"),
            ).configure(label_for_charts="first and last name swapped"),
            cll.ElseLevel(),
        ],
        comparison_description="first/last name swapped",
    )


def birth_date_comparison() -> cl.CustomComparison:
    """Exact, one typo (Damerau-Levenshtein <= 1 on yyyy-mm-dd), within a month, within a year, else.

    The levels of the library's DateOfBirthComparison, except that its typo level is plain
    Levenshtein, which misses transposed digits (12 vs 21); so the same levels are built from the
    level library with Damerau-Levenshtein, and the 10-year level is left out (no information for
    a cohort born within 15 years).
    """
    as_text = ColumnExpression("birth_date").cast_to_string()
    return cl.CustomComparison(
        output_column_name="birth_date",
        comparison_levels=[
            cll.NullLevel("birth_date"),
            cll.ExactMatchLevel("birth_date"),
            cll.DamerauLevenshteinLevel(as_text, 1),
            cll.AbsoluteDateDifferenceLevel("birth_date", input_is_string=False, threshold=1, metric="month"),
            cll.AbsoluteDateDifferenceLevel("birth_date", input_is_string=False, threshold=1, metric="year"),
            cll.ElseLevel(),
        ],
        comparison_description="birth_date: exact, DL<=1, 1 month, 1 year, else",
    )


def middle_name_comparison() -> cl.CustomComparison:
    return cl.CustomComparison(
        output_column_name="middle_name",
        comparison_levels=[
            cll.NullLevel("middle_name"),
            cll.ExactMatchLevel("middle_name"),
            _initial_level("middle_name"),
            cll.ElseLevel(),
        ],
        comparison_description="middle_name: exact, initial, else",
    )


def comparisons() -> list[ComparisonCreator]:
    return [
        name_comparison("first_name", initials=True),
        name_comparison("last_name", initials=False),
        name_swap_comparison(),
        birth_date_comparison(),
        middle_name_comparison(),
        cl.ExactMatch("ssn_token"),
        cl.ExactMatch("ssid_token"),
        cl.ExactMatch("gender"),
        # Term frequencies: agreeing on a large urban zip says less than agreeing on a small one.
        cl.ExactMatch("zip5").configure(term_frequency_adjustments=True),
    ]


def prediction_blocking_rules() -> list[BlockingRuleCreator]:
    """Rules whose union generates the pairs that are scored.

    Each rule is an equi-join with small blocks, and each covers a way a true pair can disagree
    elsewhere: the two identifiers catch pairs with changed names or missing dates; the name and
    date pairs catch records without identifiers, each tolerating an error in the field it leaves
    out; last name + first initial catches first names sent as initials; birth date + zip catches a
    changed last name; the swap rule catches transposed first and last names.
    """
    return [
        block_on("ssn_token"),
        block_on("ssid_token"),
        block_on("first_name", "last_name"),
        block_on("last_name", "birth_date"),
        block_on("first_name", "birth_date"),
        block_on("last_name", "substr(first_name, 1, 1)"),
        block_on("birth_date", "zip5"),
        CustomRule("l.first_name = r.last_name AND l.last_name = r.first_name"),
    ]


def settings() -> SettingsCreator:
    return SettingsCreator(
        link_type="dedupe_only",
        unique_id_column_name="record_id",
        comparisons=[*comparisons()],
        blocking_rules_to_generate_predictions=[*prediction_blocking_rules()],
        # Clustering only needs the ids and the scores.
        retain_matching_columns=False,
        retain_intermediate_calculation_columns=False,
    )


def train(linker: Linker, *, max_pairs_for_u: float, seed: int) -> None:
    # Prior: pairs found by near-certain rules, scaled up by their assumed recall.
    linker.training.estimate_probability_two_random_records_match(
        [block_on("ssn_token"), block_on("ssid_token"), block_on("first_name", "last_name", "birth_date")],
        recall=DETERMINISTIC_RECALL,
    )
    # u: from random pairs, nearly all non-matches.
    linker.training.estimate_u_using_random_sampling(max_pairs=max_pairs_for_u, seed=seed)
    # m: EM on three blockings; each comparison is estimated in a session that does not block on it.
    for rule in (block_on("first_name", "last_name"), block_on("birth_date"), block_on("ssn_token")):
        linker.training.estimate_parameters_using_expectation_maximisation(rule)


# --------------------------------------------------------------------------------------------------
# Backends
# --------------------------------------------------------------------------------------------------


def _parquet_glob(path: Path) -> str:
    return str(path / "*.parquet") if path.is_dir() else str(path)


class DuckDBEngine:
    """An in-memory DuckDB database, as Splink's DuckDB guide recommends."""

    def __init__(self) -> None:
        import duckdb

        self._con = duckdb.connect(":memory:")
        self.info: dict[str, Any] = {"duckdb_version": duckdb.__version__}

    def load(self, path: Path) -> SplinkDataFrame:
        from splink.backends.duckdb import DuckDBAPI

        cols = ", ".join(MODEL_COLUMNS)
        self._con.execute(f"CREATE TABLE input_records AS SELECT {cols} FROM read_parquet(?)", [_parquet_glob(path)])
        return DuckDBAPI(connection=self._con).register("input_records", table_name="input_records")

    def stop(self) -> None:
        self._con.close()


class SparkEngine:
    """A local Spark session with Splink's similarity UDFs."""

    def __init__(self, out: Path) -> None:
        import pyspark
        from pyspark.sql import SparkSession
        from splink.backends.spark import similarity_jar_location

        # Use this venv's Spark and Python, whatever an outer environment points at.
        os.environ["SPARK_HOME"] = str(Path(pyspark.__file__).parent)
        os.environ["PYSPARK_PYTHON"] = sys.executable
        os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")

        # Splink's similarity UDFs (jaro_winkler, damerau_levenshtein, ...) come from the jar inside
        # the splink wheel, passed by local path: no package is resolved or fetched at run time.
        jar = similarity_jar_location()
        self.spark: SparkSession = (
            SparkSession.builder.master(f"local[{SPARK_CORES}]")
            .appName("splink-benchmark")
            .config("spark.driver.memory", SPARK_DRIVER_MEMORY)
            .config("spark.jars", jar)
            .config("spark.sql.shuffle.partitions", str(SPARK_SHUFFLE_PARTITIONS))
            .config("spark.default.parallelism", str(SPARK_SHUFFLE_PARTITIONS))
            .config("spark.sql.session.timeZone", "UTC")
            .config("spark.driver.extraJavaOptions", "-Duser.timezone=UTC")
            .config("spark.driver.host", "127.0.0.1")
            .config("spark.driver.bindAddress", "127.0.0.1")
            .config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false")
            .config("spark.sql.warehouse.dir", str(out / "spark-warehouse"))
            .getOrCreate()
        )
        context = self.spark.sparkContext
        context.setLogLevel("ERROR")
        # Splink's "parquet" lineage breaking writes its intermediate tables under the checkpoint dir.
        context.setCheckpointDir(str(out / "spark-checkpoints"))
        jvm = context._jvm
        java_version = str(jvm.java.lang.System.getProperty("java.version")) if jvm is not None else "unknown"
        self.info: dict[str, Any] = {
            "pyspark_version": self.spark.version,
            "java_version": java_version,
            "similarity_jar": Path(jar).name,
            "spark": {
                "master": f"local[{SPARK_CORES}]",
                "driver_memory": SPARK_DRIVER_MEMORY,
                "shuffle_partitions": SPARK_SHUFFLE_PARTITIONS,
                "break_lineage_method": SPARK_BREAK_LINEAGE,
                "num_partitions_on_repartition": SPARK_REPARTITION,
            },
        }

    def load(self, path: Path) -> SplinkDataFrame:
        from splink.backends.spark import SparkAPI

        df = self.spark.read.parquet(str(path)).select(*MODEL_COLUMNS).persist()
        df.count()
        db_api = SparkAPI(  # type: ignore[no-untyped-call]
            spark_session=self.spark,
            break_lineage_method=SPARK_BREAK_LINEAGE,
            num_partitions_on_repartition=SPARK_REPARTITION,
        )
        return db_api.register(df, table_name="input_records")

    def stop(self) -> None:
        self.spark.stop()


# --------------------------------------------------------------------------------------------------
# Measurement
# --------------------------------------------------------------------------------------------------


def count_rows(sdf: SplinkDataFrame) -> int:
    result = sdf.query_sql("SELECT count(*) AS n FROM {this}")
    n = int(result.as_record_list()[0]["n"])
    result.drop_table_from_database_and_remove_from_cache()
    return n


# --------------------------------------------------------------------------------------------------
# Self-check (testing only)
# --------------------------------------------------------------------------------------------------


def _pairs_within_groups(table: pa.Table, keys: list[str]) -> int:
    sizes = table.group_by(keys).aggregate([([], "count_all")]).column("count_all")
    sizes = pc.cast(sizes, pa.int64())
    return int(pc.sum(pc.divide(pc.multiply(sizes, pc.subtract(sizes, 1)), 2)).as_py() or 0)


def self_check(input_path: Path, clusters: pa.Table) -> dict[str, float]:
    """Pairwise precision, recall and F1 of the clusters against true_person, from group sizes."""
    truth = pq.read_table(input_path, columns=["record_id", "true_person"])
    joined = clusters.join(truth, "record_id", join_type="inner")
    if joined.num_rows != truth.num_rows:
        raise RuntimeError(f"clusters cover {joined.num_rows} of {truth.num_rows} input records")
    predicted = _pairs_within_groups(joined, ["cluster_id"])
    actual = _pairs_within_groups(joined, ["true_person"])
    correct = _pairs_within_groups(joined, ["cluster_id", "true_person"])
    precision = correct / predicted if predicted else 1.0
    recall = correct / actual if actual else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "precision": round(precision, 5),
        "recall": round(recall, 5),
        "f1": round(f1, 5),
        "predicted_pairs": predicted,
        "true_pairs": actual,
        "correct_pairs": correct,
    }


# --------------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", type=Path, required=True, help="records parquet file or directory")
    parser.add_argument("--backend", choices=["duckdb", "spark"], required=True)
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument("--threshold", type=float, default=0.9, help="match probability to cluster at")
    parser.add_argument("--max-pairs-for-u", type=float, default=5e6, help="pairs sampled to estimate u")
    parser.add_argument("--seed", type=int, default=42, help="seed of the u sampling")
    parser.add_argument("--self-check", action="store_true", help="print pairwise P/R/F1 against true_person")
    parser.add_argument("--keep-intermediate", action="store_true", help="keep Spark's scratch tables under --out")
    args = parser.parse_args(argv)
    if not 0 < args.threshold < 1:
        parser.error("--threshold must be between 0 and 1")
    if not args.input.exists():
        parser.error(f"--input {args.input} does not exist")
    return args


def run(args: argparse.Namespace) -> dict[str, Any]:
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    backend: Backend = args.backend
    predict_threshold = min(PREDICT_THRESHOLD, args.threshold)
    load_before = os.getloadavg()

    with ProcessTreeMonitor() as monitor:
        watch = Stopwatch(monitor, log)
        with watch.step("startup"):
            engine: DuckDBEngine | SparkEngine = DuckDBEngine() if backend == "duckdb" else SparkEngine(out)
        try:
            with watch.step("load"):
                input_table = engine.load(args.input)
            linker = Linker(input_table, settings())
            with watch.step("train"):
                train(linker, max_pairs_for_u=args.max_pairs_for_u, seed=args.seed)
            with watch.step("predict"):
                predictions = linker.inference.predict(threshold_match_probability=predict_threshold)
            with watch.step("cluster"):
                clustered = linker.clustering.cluster_pairwise_predictions_at_threshold(
                    predictions, threshold_match_probability=args.threshold
                )
                # Collecting the ids forces the (lazy, on Spark) final join inside this step.
                ids = clustered.query_sql(
                    "SELECT CAST(record_id AS STRING) AS record_id, CAST(cluster_id AS STRING) AS cluster_id "
                    "FROM {this}"
                )
                clusters: pa.Table = ids.as_pyarrow_table()  # type: ignore[no-untyped-call]
            with watch.step("write"):
                pq.write_table(clusters, out / "clusters.parquet")
            linker.misc.save_model_to_json(str(out / "model.json"), overwrite=True)

            # Counts, outside the timed steps.
            n_records = count_rows(input_table)
            n_pairs_predicted = count_rows(predictions)
            blocking_counts = count_comparisons_from_blocking_rules(
                input_table,
                blocking_rules=prediction_blocking_rules(),
                link_type="dedupe_only",
                unique_id_column_name="record_id",
                record_sample_proportion=1.0,
            )
        finally:
            engine.stop()

    if clusters.num_rows != n_records:
        raise RuntimeError(f"clusters.parquet has {clusters.num_rows} rows for {n_records} records")

    seconds = dict(watch.seconds)
    cpu_seconds = dict(watch.cpu_seconds)
    for measure in (seconds, cpu_seconds):
        measure["total"] = round(measure["train"] + measure["predict"] + measure["cluster"], 3)
    timings: dict[str, Any] = {
        "backend": backend,
        "splink_version": splink.__version__,
        "n_records": n_records,
        "n_pairs_scored": int(blocking_counts[-1]["cumulative_comparison_count"]),
        "n_pairs_above_predict_threshold": n_pairs_predicted,
        "n_clusters": len(pc.unique(clusters.column("cluster_id"))),
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "peak_rss_mb": monitor.peak_mb(),
        "threshold": args.threshold,
        "predict_threshold": predict_threshold,
        "max_pairs_for_u": args.max_pairs_for_u,
        "seed": args.seed,
        "machine": {
            "cores": os.cpu_count(),
            "memory_mb": round(psutil.virtual_memory().total / 2**20),
            "platform": platform.platform(),
            "python": platform.python_version(),
            # 1-minute load averages before and after the run: the machine may be shared.
            "load_average_1m": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        },
        **engine.info,
    }
    if backend == "spark" and not args.keep_intermediate:
        shutil.rmtree(out / "spark-checkpoints", ignore_errors=True)
        shutil.rmtree(out / "spark-warehouse", ignore_errors=True)
    (out / "timings.json").write_text(json.dumps(timings, indent=2) + "\n")

    if args.self_check:
        check = self_check(args.input, clusters)
        print(
            f"self-check ({backend}, threshold {args.threshold}): precision {check['precision']:.4f} "
            f"recall {check['recall']:.4f} F1 {check['f1']:.4f} "
            f"(pairs: predicted {check['predicted_pairs']}, true {check['true_pairs']}, "
            f"correct {check['correct_pairs']})"
        )
    return timings


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    timings = run(args)
    print(json.dumps(timings, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
