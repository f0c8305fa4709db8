"""Connected components (large-star / small-star) against networkx on the same edges."""

from __future__ import annotations

import random

import networkx as nx
import pytest
from chispa import assert_df_equality
from pyspark.sql import DataFrame, SparkSession

from lakehouse.er.components import (
    ComponentsNotConvergedError,
    connected_components,
    large_star,
    small_star,
)

PAIR_SCHEMA = "record_id_l string, record_id_r string"
LABEL_SCHEMA = "record_id string, cluster_id string"


def reference_labels(edges: list[tuple[str | None, str | None]]) -> dict[str, str]:
    """Node -> smallest node of its component, by networkx (the reference); self-loops and nulls join nothing."""
    graph = nx.Graph()
    graph.add_edges_from(
        (left, right) for left, right in edges if left is not None and right is not None and left != right
    )
    return {member: min(component) for component in nx.connected_components(graph) for member in component}


def check_against_networkx(
    spark: SparkSession, edges: list[tuple[str | None, str | None]], max_iterations: int = 30
) -> int:
    """Assert connected_components equals networkx on `edges`; return the iterations it took."""
    pairs = spark.createDataFrame(edges, PAIR_SCHEMA)
    result = connected_components(pairs, max_iterations=max_iterations)
    expected = spark.createDataFrame(sorted(reference_labels(edges).items()), LABEL_SCHEMA)
    assert_df_equality(result.labels, expected, ignore_row_order=True, ignore_nullable=True)
    return result.iterations


def node(i: int) -> str:
    return f"n{i:03d}"


def test_chain_star_two_components_duplicates_and_nulls(spark: SparkSession) -> None:
    edges: list[tuple[str | None, str | None]] = [
        # a chain a-b-c-d-e given out of order and in both directions
        ("c", "d"),
        ("b", "a"),
        ("d", "e"),
        ("c", "b"),
        ("a", "b"),
        # a star whose centre is the largest id, so the star must be turned inside out
        ("z", "p"),
        ("z", "q"),
        ("z", "r"),
        ("z", "s"),
        # a second, separate component with a cycle
        ("k1", "k2"),
        ("k2", "k3"),
        ("k3", "k1"),
        # a self-loop that joins nothing, and null rows that must be ignored
        ("x", "x"),
        ("a", None),
        (None, None),
    ]
    check_against_networkx(spark, edges)


def test_self_loop_only_node_has_no_label(spark: SparkSession) -> None:
    pairs = spark.createDataFrame([("x", "x"), (None, "y")], PAIR_SCHEMA)
    result = connected_components(pairs, max_iterations=5)
    assert result.labels.count() == 0
    assert result.iterations == 1


def test_long_shuffled_path_needs_several_iterations(spark: SparkSession) -> None:
    ids = [node(i) for i in range(64)]
    random.Random(7).shuffle(ids)
    path: list[tuple[str | None, str | None]] = [(ids[i], ids[i + 1]) for i in range(len(ids) - 1)]
    iterations = check_against_networkx(spark, path)
    assert iterations >= 3


def test_random_forest_of_components(spark: SparkSession) -> None:
    rng = random.Random(11)
    edges: list[tuple[str | None, str | None]] = [
        (node(rng.randrange(120)), node(rng.randrange(120))) for _ in range(90)
    ]
    check_against_networkx(spark, edges)


@pytest.mark.parametrize("shape", ["sparse", "dense", "stars_and_chains"])
def test_random_graphs_match_networkx(spark: SparkSession, shape: str) -> None:
    rng = random.Random({"sparse": 1, "dense": 2, "stars_and_chains": 3}[shape])
    edges: list[tuple[str | None, str | None]]
    if shape == "sparse":  # many small components and singletons
        edges = [(node(rng.randrange(400)), node(rng.randrange(400))) for _ in range(250)]
    elif shape == "dense":  # one giant component and a few stragglers
        edges = [(node(rng.randrange(150)), node(rng.randrange(150))) for _ in range(600)]
    else:  # a star centred on the largest id, a long chain through it, and a star of stars
        ids = [node(i) for i in range(300)]
        rng.shuffle(ids)
        edges = [(node(999), ids[i]) for i in range(60)]
        edges += [(ids[i], ids[i + 1]) for i in range(60, 200)]
        edges += [(ids[199], node(999))]
        edges += [(ids[200 + i], ids[200 + 10 * (i // 10)]) for i in range(1, 100)]
    check_against_networkx(spark, edges)


def test_no_convergence_raises(spark: SparkSession) -> None:
    ids = [node(i) for i in range(40)]
    random.Random(3).shuffle(ids)
    pairs = spark.createDataFrame([(ids[i], ids[i + 1]) for i in range(len(ids) - 1)], PAIR_SCHEMA)
    with pytest.raises(ComponentsNotConvergedError, match="did not converge in 1 iterations"):
        connected_components(pairs, max_iterations=1)


def edges_frame(spark: SparkSession, rows: list[tuple[str, str]]) -> DataFrame:
    return spark.createDataFrame(rows, "src string, dst string")


def test_large_star_links_larger_neighbours_to_the_smallest(spark: SparkSession) -> None:
    # path 1 - 2 - 3 - 4 (src > dst): node 2's smallest neighbour is 1, node 3's is 2
    edges = edges_frame(spark, [("2", "1"), ("3", "2"), ("4", "3")])
    expected = spark.createDataFrame(
        [("2", "1", False), ("3", "1", True), ("4", "2", True)], "src string, dst string, is_changed boolean"
    )
    assert_df_equality(large_star(edges), expected, ignore_row_order=True, ignore_nullable=True)


def test_small_star_links_smaller_neighbours_to_their_minimum(spark: SparkSession) -> None:
    # node 4 has smaller neighbours 1 and 3: both end up on 1; node 3 -> 1 comes out once
    edges = spark.createDataFrame(
        [("4", "1", False), ("4", "3", False), ("3", "1", False), ("6", "5", False)],
        "src string, dst string, is_changed boolean",
    )
    expected = spark.createDataFrame(
        [("4", "1", True), ("3", "1", True), ("6", "5", False)], "src string, dst string, is_changed boolean"
    )
    assert_df_equality(small_star(edges), expected, ignore_row_order=True, ignore_nullable=True)
