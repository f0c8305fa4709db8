"""Connected components of the match graph by large-star / small-star alternation (Kiveris et al., 2014).

The graph is a DataFrame of edges oriented from the larger node id to the smaller one (src > dst), without
self-loops or duplicates. One iteration is a large-star step followed by a small-star step:

- large-star: every edge (v, u) with v > u becomes (v, m(u)), m(u) being the smallest of u and u's neighbours;
- small-star: every node u with smaller neighbours S(u) is linked to m = min(S(u)), and so is every node of S(u).

Both steps keep components and converge to one star per component, centred on its smallest node, in
O(log^2 n) iterations (a path of n nodes needs about log n, not n as min-label propagation would). An
iteration costs three shuffles: a window per node for each step and the removal of repeated edges. Each row
carries `is_changed`: whether the step altered it. An iteration that changes nothing proves the graph is a
union of stars (every destination is a root and every source has one parent), so the loop needs one action
per iteration, a count of changed edges, after the lineage is cut with a local checkpoint.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from pyspark.sql import DataFrame, Window
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


def large_star(edges: DataFrame) -> DataFrame:
    """One row per edge after the large-star step (repeats possible): src, dst (src > dst), is_changed.

    Edge (v, u) with v > u becomes (v, m(u)), m(u) being the smallest of u and all its neighbours; it is
    changed when m(u) is not u. One shuffle: a window over each node's full neighbourhood.
    """
    both_ways = edges.select(F.col("src").alias("node"), F.col("dst").alias("neighbour")).unionByName(
        edges.select(F.col("dst").alias("node"), F.col("src").alias("neighbour"))
    )
    neighbourhood = Window.partitionBy("node")
    smallest = F.least(F.min("neighbour").over(neighbourhood), F.col("node"))
    return (
        both_ways.withColumn("smallest", smallest)
        .where(F.col("neighbour") > F.col("node"))
        .select(
            F.col("neighbour").alias("src"),
            F.col("smallest").alias("dst"),
            (F.col("smallest") != F.col("node")).alias("is_changed"),
        )
    )


def small_star(edges: DataFrame) -> DataFrame:
    """One row per edge after the small-star step: src, dst (src > dst), is_changed (carried over or new).

    Every node u is linked to m, its smallest neighbour, and so is each of u's other smaller neighbours. The
    edge (u, m) is changed when u had more than one smaller neighbour or one of its incoming edges was changed.
    Repeated input edges are harmless. Two shuffles: a window over each node's smaller neighbours, and the
    removal of repeated edges.
    """
    smaller = Window.partitionBy("src")
    framed = edges.withColumns(
        {
            "smallest": F.min("dst").over(smaller),
            "largest": F.max("dst").over(smaller),
            "was_changed": F.max(F.col("is_changed").cast("int")).over(smaller) == 1,
        }
    )
    to_smallest = framed.select(
        "src",
        F.col("smallest").alias("dst"),
        (F.col("was_changed") | (F.col("smallest") != F.col("largest"))).alias("is_changed"),
    )
    neighbours_to_smallest = framed.where(F.col("dst") != F.col("smallest")).select(
        F.col("dst").alias("src"), F.col("smallest").alias("dst"), F.lit(True).alias("is_changed")
    )
    return (
        to_smallest.unionByName(neighbours_to_smallest)
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
