"""Silver: typed, validated feed tables and the conformed silver.person_records.

`build_silver(spark, settings)` is the stage; `lakehouse.silver.standardize` holds the Column functions
that entity resolution reuses.
"""

from lakehouse.silver.build import SilverResult, build_silver

__all__ = ["SilverResult", "build_silver"]
