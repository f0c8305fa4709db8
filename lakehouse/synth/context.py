"""What a feed builder receives, and the last step every builder shares."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from lakehouse.config import FeedConfig, SynthSettings
from lakehouse.synth.draws import Draws
from lakehouse.synth.identity import IdentityProfile, with_identity
from lakehouse.synth.reference import Reference
from lakehouse.synth.render import source_column


@dataclass(frozen=True)
class FeedContext:
    """The population and the tools to turn it into the rows of one feed."""

    people: DataFrame
    draws: Draws
    ref: Reference
    synth: SynthSettings
    seed: int
    feed: FeedConfig

    def window_start(self) -> Column:
        """January 1 of the first data year (date)."""
        return F.make_date(F.lit(self.synth.first_data_year), F.lit(1), F.lit(1))

    def window_end(self) -> Column:
        """December 31 of the last data year (date)."""
        return F.make_date(F.lit(self.synth.last_data_year), F.lit(12), F.lit(31))

    def in_window(self, year: Column) -> Column:
        """True when calendar or school `year` is within the data window."""
        return year.between(self.synth.first_data_year, self.synth.last_data_year)

    def finish(self, rows: DataFrame, profile: IdentityProfile, values: Mapping[str, Column]) -> DataFrame:
        """Add the record's identity (with noise) and keep what the feed's YAML asks for.

        `rows` has the people columns, `_row_code` and `_event_year`; `values` gives the non-identity YAML
        columns by name and partner-specific identity values as `_id_<role>` (local_id, address...).
        Returns `_row_code`, `_person_key` and one column per YAML column except the record key.
        """
        identified = with_identity(rows, profile, self.feed.key, draws=self.draws, ref=self.ref, synth=self.synth)
        identified = identified.withColumns(dict(values))
        available = set(identified.columns)
        wanted = [source_column(c) for c in self.feed.columns if c.name != self.feed.record_key]
        missing = [name for name in wanted if name not in available]
        if missing:
            raise ValueError(f"feed {self.feed.key}: the generator has no values for {', '.join(missing)}")
        return identified.select(
            F.col("_row_code"), F.col("person_key").alias("_person_key"), *[F.col(name) for name in wanted]
        )


def guarded_sequence(start: Column, stop: Column) -> Column:
    """sequence(start, stop) as array<int>, empty when start > stop or either is null (Spark raises instead)."""
    return F.when(start <= stop, F.sequence(start.cast("int"), stop.cast("int"))).otherwise(
        F.array().cast("array<int>")
    )
