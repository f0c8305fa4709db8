"""Entity resolution: link silver.person_records into persons and write the master person index (mpi).

The baseline links with the deterministic rules of conf/matching.yaml. Blocking (`blocking`), clustering
(`components`) and person ids with their history (`ids`) are the machinery a probabilistic model plugs into.
"""

from lakehouse.er.components import ComponentsNotConvergedError
from lakehouse.er.evaluation import LinkageMetrics, evaluate
from lakehouse.er.linking import LinkResult, link

__all__ = ["ComponentsNotConvergedError", "LinkResult", "LinkageMetrics", "evaluate", "link"]
