"""Gold (research zone): de-identified person dimension, one fact table per domain and outcome marts.

Everything is keyed by person_id only; no names, SSNs, student or local ids, tokens, addresses, zip codes,
full birth dates, record ids or source lineage reach these tables. Definitions live in conf/gold.yaml.
"""

from lakehouse.gold.build import GOLD_FEEDS, GOLD_TABLES, build_gold, gold_tables
from lakehouse.gold.config import GoldConfig, load_gold_config
from lakehouse.gold.linking import UnlinkedRecordsError

__all__ = [
    "GOLD_FEEDS",
    "GOLD_TABLES",
    "GoldConfig",
    "UnlinkedRecordsError",
    "build_gold",
    "gold_tables",
    "load_gold_config",
]
