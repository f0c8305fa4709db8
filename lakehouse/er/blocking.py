"""Blocking: candidate record pairs from equi-join rules, with oversized blocks capped and reported.

A blocking rule names columns of `silver.person_records`; two records form a candidate pair under the rule
when every one of those columns is equal and not null. Rules run in order and each pair is labelled with the
first rule that produced it. All rules join at once: every record gives one row per rule it takes part in, and
one self-join on (rule, key) makes every rule's pairs, its condition carrying the negation of the earlier rules
so that a later rule never re-emits a pair (no distinct over the pairs is needed). The pairs are narrow (two
ids and the rule); the features a comparison reads are joined to them afterwards.

Before a rule joins, its blocks (the records sharing one key) are counted; a block with more records than the
rule's `max_block_size` is left out of that rule and reported by the SHA-256 of its key, never the raw key.
One placeholder or heavily shared value then cannot explode the join or chain hundreds of people together.
A pair inside a capped block of an earlier rule can still come from a later rule.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from lakehouse.config import BlockingRule

logger = logging.getLogger(__name__)

KEY_SEPARATOR = "\u001f"
"""Joins the columns of a block key before hashing (the ASCII unit separator: not in standardized values)."""


@dataclass(frozen=True)
class Blocking:
    """Results of blocking: `pairs` (record_id_l, record_id_r, rule) and `capped` (one row per capped block)."""

    pairs: DataFrame
    capped: DataFrame


def all_of(conditions: Sequence[Column]) -> Column:
    """Conjunction of `conditions` (at least one)."""
    if not conditions:
        raise ValueError("all_of needs at least one condition")
    result = conditions[0]
    for condition in conditions[1:]:
        result = result & condition
    return result


def any_of(conditions: Sequence[Column]) -> Column:
    """Disjunction of `conditions` (at least one)."""
    if not conditions:
        raise ValueError("any_of needs at least one condition")
    result = conditions[0]
    for condition in conditions[1:]:
        result = result | condition
    return result


def has_block_key(columns: Sequence[str]) -> Column:
    """True when every column of a block key is not null (a null never blocks)."""
    return all_of([F.col(c).isNotNull() for c in columns])


def rule_flag(index: int) -> str:
    """Name of the column that says a record takes part in rule number `index` (0-based)."""
    return f"is_blocked_by_rule_{index}"


def check_rules(records: DataFrame, rules: Sequence[BlockingRule]) -> None:
    """Raise ValueError when a rule is malformed or names a column `records` does not have."""
    names = [rule.name for rule in rules]
    if len(set(names)) != len(names):
        raise ValueError(f"blocking rule names must be unique, got {names}")
    available = set(records.columns)
    if "record_id" not in available:
        raise ValueError("blocking needs a record_id column")
    for rule in rules:
        if not rule.columns:
            raise ValueError(f"blocking rule {rule.name!r} has no columns")
        if rule.max_block_size < 2:
            raise ValueError(
                f"blocking rule {rule.name!r}: max_block_size must be at least 2, got {rule.max_block_size}"
            )
        missing = [c for c in rule.columns if c not in available]
        if missing:
            raise ValueError(f"blocking rule {rule.name!r} names columns the records lack: {', '.join(missing)}")


def block_key(columns: Sequence[str]) -> Column:
    """A block key as one string: the columns cast to string, joined by the unit separator. Null unless complete."""
    return F.when(has_block_key(columns), F.concat_ws(KEY_SEPARATOR, *[F.col(c).cast("string") for c in columns]))


def block_key_hash(columns: Sequence[str]) -> Column:
    """SHA-256 hex of a block key (`block_key`). Null in, null out."""
    return F.sha2(block_key(columns), 256)


def _by_rule_index(values: Sequence[object]) -> Callable[[Column], Column]:
    """A lookup of a per-rule value (name, block size limit) by a 0-based rule index column."""
    array = F.array(*[F.lit(v) for v in values])
    return lambda index: F.element_at(array, index + F.lit(1))


def all_capped_blocks(records: DataFrame, rules: Sequence[BlockingRule]) -> DataFrame:
    """The capped blocks of every rule (rule, block_key_hash, block_size), materialized.

    One aggregation for all rules: every record gives one (rule, key) row per rule whose key it has complete.
    """
    keys = F.array(
        *[F.struct(F.lit(i).alias("rule_index"), block_key(r.columns).alias("block_key")) for i, r in enumerate(rules)]
    )
    name, limit = _by_rule_index([r.name for r in rules]), _by_rule_index([r.max_block_size for r in rules])
    return (
        records.select(F.inline(keys))
        .where(F.col("block_key").isNotNull())
        .groupBy("rule_index", "block_key")
        .agg(F.count(F.lit(1)).alias("block_size"))
        .where(F.col("block_size") > limit(F.col("rule_index")))
        .select(
            name(F.col("rule_index")).alias("rule"),
            F.sha2(F.col("block_key"), 256).alias("block_key_hash"),
            F.col("block_size").cast("long").alias("block_size"),
        )
        .localCheckpoint(eager=True)
    )


def with_rule_flags(records: DataFrame, rules: Sequence[BlockingRule], capped: DataFrame) -> DataFrame:
    """Add is_blocked_by_rule_<i> per rule: the record's key of rule i is complete and its block is not capped.

    `capped` lists the capped blocks of every rule (rule, block_key_hash, block_size); it is small, so each left
    join that marks capped records can be a broadcast join. A record whose key is incomplete joins on a value of
    its own, so the many records without a key (no SSN, say) never meet in one partition.
    """
    flagged = records
    for index, rule in enumerate(rules):
        marker = f"capped_key_hash_{index}"
        marks = capped.where(F.col("rule") == F.lit(rule.name)).select(F.col("block_key_hash").alias(marker))
        own_key = F.coalesce(block_key_hash(rule.columns), F.concat(F.lit("no key|"), F.col("record_id")))
        flagged = (
            flagged.join(marks, on=own_key == F.col(marker), how="left")
            .withColumn(rule_flag(index), has_block_key(rule.columns) & F.col(marker).isNull())
            .drop(marker)
        )
    return flagged


def rule_pairs(
    flagged: DataFrame,
    rules: Sequence[BlockingRule],
    *,
    across: str | None = None,
    touching: str | None = None,
) -> DataFrame:
    """One row per candidate pair: record_id_l < record_id_r, and the rule that first produced it.

    `flagged` carries the rule flags of `with_rule_flags`. Every record gives one row per rule it takes part in
    (rule index, a 64-bit hash of its key); one self-join on (rule, hash) makes the pairs of every rule at once,
    with the keys' exact equality checked in the join condition (a hash collision never pairs two blocks). A
    pair that an earlier rule already produced (same complete key there, block not capped) is excluded inside
    the join condition. With `across`, only pairs whose records differ in that column (two inputs linked to
    each other). With `touching` (a boolean column), only pairs with at least one such record, from the blocks
    that hold one, so the work grows with those blocks, not with all records (incremental linking).
    """
    keys = F.array(
        *[
            F.struct(
                F.lit(i).alias("rule_index"),
                F.when(F.col(rule_flag(i)), F.xxhash64(*rule.columns)).alias("key_hash"),
            )
            for i, rule in enumerate(rules)
        ]
    )
    extra = [c for c in (across, touching) if c is not None]
    columns = list(dict.fromkeys([c for rule in rules for c in rule.columns]))
    keep = ["record_id", *columns, *[rule_flag(i) for i in range(len(rules))], *[c for c in extra if c not in columns]]
    keyed = flagged.select(*keep, F.inline(keys)).where(F.col("key_hash").isNotNull())
    if touching is not None:
        blocks = keyed.where(F.col(touching)).select("rule_index", "key_hash").distinct()
        keyed = keyed.join(blocks, on=["rule_index", "key_hash"], how="left_semi")

    def l(c: str) -> Column:  # noqa: E743
        return F.col(f"l.{c}")

    def r(c: str) -> Column:
        return F.col(f"r.{c}")

    same_key = F.when(F.lit(False), F.lit(False))
    for index, rule in enumerate(rules):
        same_key = same_key.when(l("rule_index") == F.lit(index), all_of([l(c) == r(c) for c in rule.columns]))
    # The residual conditions run in this order for every two records of a block: the cheapest first.
    on = [
        l("rule_index") == r("rule_index"),
        l("key_hash") == r("key_hash"),
        l("record_id") < r("record_id"),
        same_key.otherwise(F.lit(False)),
    ]
    if touching is not None:
        on.append(l(touching) | r(touching))
    if across is not None:
        on.append(l(across) != r(across))
    for earlier_index, earlier in enumerate(rules[:-1]):
        # The left record's flag is enough: equal keys put both records in the same block.
        produced = all_of([l(rule_flag(earlier_index))] + [l(c).eqNullSafe(r(c)) for c in earlier.columns])
        on.append(~((l("rule_index") > F.lit(earlier_index)) & produced))
    name = _by_rule_index([rule.name for rule in rules])
    return (
        keyed.alias("l")
        .join(keyed.alias("r"), on=all_of(on), how="inner")
        .select(
            l("record_id").alias("record_id_l"),
            r("record_id").alias("record_id_r"),
            name(l("rule_index")).alias("rule"),
        )
    )


def with_carried(pairs: DataFrame, records: DataFrame, carry: Sequence[str], *, broadcast: bool = False) -> DataFrame:
    """Add l_<c>, r_<c> for every column c of `carry` to pairs (record_id_l, record_id_r, ...): both records'
    values, joined from `records` by record id, so that comparing a pair needs no further join. With
    `broadcast`, the records are sent whole to every partition of the pairs (few records), else both joins
    shuffle."""
    if not carry:
        return pairs

    def side(name: str) -> DataFrame:
        frame = records.select(
            F.col("record_id").alias(f"record_id_{name}"), *[F.col(c).alias(f"{name}_{c}") for c in carry]
        )
        return F.broadcast(frame) if broadcast else frame

    return (
        pairs.join(side("l"), on="record_id_l", how="inner")
        .join(side("r"), on="record_id_r", how="inner")
        .select(*pairs.columns, *[f"{name}_{c}" for c in carry for name in ("l", "r")])
    )


def block(
    records: DataFrame,
    rules: Sequence[BlockingRule],
    carry: Sequence[str] = (),
    *,
    across: str | None = None,
    touching: str | None = None,
    capped: DataFrame | None = None,
    broadcast_records: bool = False,
) -> Blocking:
    """Candidate pairs of `records` (one row per record, `record_id` unique) under `rules`, in rule order.

    Returns `pairs` (record_id_l, record_id_r, rule, and l_<c>, r_<c> per column of `carry`; each unordered pair
    once, labelled with the first rule that produced it) and `capped` (rule, block_key_hash, block_size; one row
    per block left out). With `across` (a column), only pairs whose two records differ in it; with `touching` (a
    boolean column), only pairs with at least one record where it is true; `capped`, when the caller already
    computed it with `all_capped_blocks` on the same records, is not computed again. The capped blocks
    and the records flagged with them are materialized here (two Spark jobs); the pairs stay lazy.
    """
    check_rules(records, rules)
    extra = [c for c in (across, touching) if c is not None]
    missing = [c for c in [*carry, *extra] if c not in records.columns]
    if missing:
        raise ValueError(f"blocking cannot carry columns the records lack: {', '.join(missing)}")
    if not rules:
        spark = records.sparkSession
        carried = {f"{side}_{c}": records.schema[c].dataType.simpleString() for c in carry for side in ("l", "r")}
        ddl = ", ".join(
            ["record_id_l string, record_id_r string, rule string", *[f"{n} {k}" for n, k in carried.items()]]
        )
        empty_pairs = spark.createDataFrame([], ddl)
        empty_capped = spark.createDataFrame([], "rule string, block_key_hash string, block_size long")
        return Blocking(pairs=empty_pairs, capped=empty_capped)
    key_columns = list(dict.fromkeys(c for rule in rules for c in rule.columns))
    slim = records.select("record_id", *key_columns, *[c for c in extra if c not in key_columns])
    # Materialized once each: the capped blocks are reported and read by every rule's flag; the flagged records
    # are read by both sides of the pairs' self-join.
    if capped is None:
        capped = all_capped_blocks(slim, rules)
    flagged = with_rule_flags(slim, rules, capped).localCheckpoint(eager=True)
    pairs = with_carried(
        rule_pairs(flagged, rules, across=across, touching=touching), records, carry, broadcast=broadcast_records
    )
    logger.info("blocking with %d rules: %s", len(rules), ", ".join(r.name for r in rules))
    return Blocking(pairs=pairs, capped=capped)


@dataclass(frozen=True)
class RuleAnalysis:
    """What one blocking rule will do: its blocks, the pairs they hold, those it adds, and what is capped.

    raw_pairs: pairs inside its uncapped blocks (sum of n(n-1)/2); new_pairs: those no earlier rule produced
    (the candidate pairs the rule adds); largest_blocks: (block_key_hash, size) of its biggest blocks, capped
    or not.
    """

    rule: str
    keyed_records: int
    blocks: int
    raw_pairs: int
    new_pairs: int
    capped_blocks: int
    capped_records: int
    largest_blocks: tuple[tuple[str, int], ...]


def analyze_blocking(records: DataFrame, rules: Sequence[BlockingRule], top: int = 5) -> list[RuleAnalysis]:
    """Per rule, in order, the figures of `RuleAnalysis`: a few aggregations and one counted join per rule.

    Run it before linking to see which rule creates the pairs and which keys are hot; nothing is written.
    """
    check_rules(records, rules)
    blocking = block(records, rules)
    new_pairs = {
        r["rule"]: int(r["n"]) for r in blocking.pairs.groupBy("rule").agg(F.count(F.lit(1)).alias("n")).collect()
    }
    result = []
    for rule in rules:
        sizes = (
            records.where(has_block_key(rule.columns))
            .groupBy(*rule.columns)
            .agg(F.count(F.lit(1)).alias("n"))
            .select(block_key_hash(rule.columns).alias("block_key_hash"), F.col("n").cast("long").alias("n"))
            .localCheckpoint(eager=True)
        )
        capped = F.col("n") > F.lit(rule.max_block_size)
        row = sizes.agg(
            F.coalesce(F.sum("n"), F.lit(0)).alias("keyed_records"),
            F.count(F.lit(1)).alias("blocks"),
            F.coalesce(F.sum(F.when(~capped, F.shiftright(F.col("n") * (F.col("n") - 1), 1))), F.lit(0)).alias("raw"),
            F.count_if(capped).alias("capped_blocks"),
            F.coalesce(F.sum(F.when(capped, F.col("n"))), F.lit(0)).alias("capped_records"),
        ).first()
        largest = sizes.orderBy(F.desc("n"), "block_key_hash").limit(top).collect()
        result.append(
            RuleAnalysis(
                rule=rule.name,
                keyed_records=int(row["keyed_records"]) if row else 0,
                blocks=int(row["blocks"]) if row else 0,
                raw_pairs=int(row["raw"]) if row else 0,
                new_pairs=new_pairs.get(rule.name, 0),
                capped_blocks=int(row["capped_blocks"]) if row else 0,
                capped_records=int(row["capped_records"]) if row else 0,
                largest_blocks=tuple((str(r["block_key_hash"])[:12], int(r["n"])) for r in largest),
            )
        )
    return result


def render_analysis(analysis: Sequence[RuleAnalysis]) -> str:
    """A plain-text table of `analyze_blocking`'s figures, one line per rule, then the total candidate pairs."""
    header = f"{'rule':<32} {'records':>10} {'blocks':>9} {'pairs':>12} {'new pairs':>12} {'capped':>7}  largest blocks"
    lines = [header, "-" * len(header)]
    for a in analysis:
        largest = ", ".join(f"{size}" for _, size in a.largest_blocks)
        capped = f"{a.capped_blocks}" + (f" ({a.capped_records} rec)" if a.capped_blocks else "")
        figures = f"{a.keyed_records:>10,} {a.blocks:>9,} {a.raw_pairs:>12,} {a.new_pairs:>12,}"
        lines.append(f"{a.rule:<32} {figures} {capped:>7}  {largest}")
    lines.append(f"candidate pairs in all: {sum(a.new_pairs for a in analysis):,}")
    return "\n".join(lines)
