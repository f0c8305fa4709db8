"""Connected components of the match graph by large-star / small-star alternation (Kiveris et al., 2014).

The graph is a DataFrame of edges oriented from the larger node id to the smaller one (src > dst), without
self-loops or duplicates. One iteration is a large-star step followed by a small-star step:

- large-star: every edge (v, u) with v > u becomes (v, m(u)), m(u) being the smallest of u and u's neighbours;
- small-star: every node u with smaller neighbours S(u) is linked to m = min(S(u)), and so is every node of S(u).

Both steps keep components and converge to one star per component, centred on its smallest node, in
O(log^2 n) iterations (a path of n nodes needs about log n, not n as min-label propagation would). Each row
carries `is_changed`: whether the step altered it. An iteration that changes nothing proves the graph is a
union of stars (every destination is a root and every source has one parent), so the loop needs one action
per iteration, a count of changed edges, after the lineage is cut with a local checkpoint.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

logger = logging.getLogger(__name__)


class ComponentsNotConvergedError(RuntimeError):
    """Connected components did not converge within the allowed number of iterations."""


@dataclass(frozen=True)
class Components:
    """`labels`: one row per node that has an edge: record_id, cluster_id (smallest record_id of its component)."""

    labels: DataFrame
    iterations: int


def oriented_edges(pairs: DataFrame, left: str = "record_id_l", right: str = "record_id_r") -> DataFrame:
    """One row per undirected edge of `pairs`: src (larger node), dst (smaller); self-loops and repeats dropped."""
    return (
        pairs.select(
            F.greatest(F.col(left), F.col(right)).alias("src"),
            F.least(F.col(left), F.col(right)).alias("dst"),
        )
        .where(F.col("src").isNotNull() & F.col("dst").isNotNull() & (F.col("src") != F.col("dst")))
        .distinct()
    )


def smallest_neighbours(edges: DataFrame) -> DataFrame:
    """One row per node with a smaller neighbour: node, min_neighbour, n_neighbours, was_changed."""
    aggregates = [
        F.min("dst").alias("min_neighbour"),
        F.count(F.lit(1)).alias("n_neighbours"),
    ]
    if "is_changed" in edges.columns:
        aggregates.append(F.bool_or("is_changed").alias("was_changed"))
    else:
        aggregates.append(F.lit(False).alias("was_changed"))
    return edges.groupBy(F.col("src").alias("node")).agg(*aggregates)


def large_star(edges: DataFrame) -> DataFrame:
    """One row per edge after the large-star step: src, dst (src > dst), is_changed.

    Edge (v, u) becomes (v, m(u)) with m(u) the smallest of u and its neighbours; it is changed when u has a
    smaller neighbour.
    """
    minimum = smallest_neighbours(edges.select("src", "dst")).select("node", "min_neighbour")
    moved = (
        edges.alias("e")
        .join(minimum.alias("m"), on=F.col("e.dst") == F.col("m.node"), how="left")
        .select(
            F.col("e.src").alias("src"),
            F.coalesce(F.col("m.min_neighbour"), F.col("e.dst")).alias("dst"),
            F.col("m.min_neighbour").isNotNull().alias("is_changed"),
        )
    )
    return moved.groupBy("src", "dst").agg(F.bool_or("is_changed").alias("is_changed"))


def small_star(edges: DataFrame) -> DataFrame:
    """One row per edge after the small-star step: src, dst (src > dst), is_changed (carried over or new).

    Every node u is linked to m = its smallest neighbour, and so is each of u's other smaller neighbours. The
    edge (u, m) is changed when u had more than one smaller neighbour or an incoming edge was changed.
    """
    minimum = smallest_neighbours(edges)
    to_minimum = minimum.select(
        F.col("node").alias("src"),
        F.col("min_neighbour").alias("dst"),
        (F.col("was_changed") | (F.col("n_neighbours") > 1)).alias("is_changed"),
    )
    neighbours_to_minimum = (
        edges.alias("e")
        .join(minimum.alias("m"), on=F.col("e.src") == F.col("m.node"), how="inner")
        .where(F.col("e.dst") != F.col("m.min_neighbour"))
        .select(
            F.col("e.dst").alias("src"),
            F.col("m.min_neighbour").alias("dst"),
            F.lit(True).alias("is_changed"),
        )
    )
    return (
        to_minimum.unionByName(neighbours_to_minimum)
        .groupBy("src", "dst")
        .agg(F.bool_or("is_changed").alias("is_changed"))
    )


def star_labels(edges: DataFrame) -> DataFrame:
    """One row per node of a union of stars (src > dst): record_id, cluster_id (the star's centre)."""
    nodes = edges.select(F.col("src").alias("record_id"), F.col("dst").alias("cluster_id")).unionByName(
        edges.select(F.col("dst").alias("record_id"), F.col("dst").alias("cluster_id"))
    )
    return nodes.groupBy("record_id").agg(F.min("cluster_id").alias("cluster_id"))


def connected_components(
    pairs: DataFrame, max_iterations: int, left: str = "record_id_l", right: str = "record_id_r"
) -> Components:
    """Connected components of the graph whose edges are the rows of `pairs` (`left`, `right` node ids).

    Returns the lazy labels (record_id, cluster_id: the smallest node id of the component) of every node that
    has an edge, and the number of iterations run. Each iteration cuts lineage with a local checkpoint and runs
    one action. Raises ComponentsNotConvergedError after `max_iterations` iterations without convergence.
    """
    if max_iterations < 1:
        raise ValueError(f"max_iterations must be at least 1, got {max_iterations}")
    edges = oriented_edges(pairs, left, right)
    for iteration in range(1, max_iterations + 1):
        edges = small_star(large_star(edges)).localCheckpoint(eager=False)
        n_changed = edges.where(F.col("is_changed")).count()  # the one action of the iteration
        logger.info("connected components: iteration %d, %d edges changed", iteration, n_changed)
        if n_changed == 0:
            return Components(labels=star_labels(edges), iterations=iteration)
    raise ComponentsNotConvergedError(
        f"connected components did not converge in {max_iterations} iterations (matching.max_iterations)"
    )
