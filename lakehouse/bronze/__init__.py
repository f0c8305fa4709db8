"""Bronze: partner deliveries from the landing zone into one raw, append-only Delta table per feed.

`ingest_landing(spark, settings)` is the stage; see `lakehouse.bronze.ingest` for the steps.
"""

from lakehouse.bronze.ingest import DeliveryResult, ingest_landing

__all__ = ["DeliveryResult", "ingest_landing"]
