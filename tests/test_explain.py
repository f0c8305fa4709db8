"""`lakehouse explain` on the reference lakehouse: a person's records and links, one pair's weights (which add up
to its match weight), and a clear error for an unknown person."""

from __future__ import annotations

import pandas as pd
import pytest
from deltalake import DeltaTable

from tests.conftest import ReferenceRun

EXIT_USAGE = 2


@pytest.fixture(scope="module")
def linked_person(reference_run: ReferenceRun) -> tuple[str, list[str]]:
    """The person with the most records (ties: the smallest id) and its record ids, from the crosswalk."""
    crosswalk = DeltaTable(str(reference_run.lakehouse.table_paths()["mpi.crosswalk"])).to_pandas()
    sizes = crosswalk.groupby("person_id").size().reset_index(name="n").sort_values(["n", "person_id"])
    person = str(sizes.sort_values("n", ascending=False, kind="stable").iloc[0]["person_id"])
    assert int(sizes["n"].max()) >= 3, "the reference run should link some person's records across partners"
    return person, sorted(crosswalk.loc[crosswalk["person_id"] == person, "record_id"])


def test_explain_person_lists_its_records_and_links(
    reference_run: ReferenceRun, linked_person: tuple[str, list[str]]
) -> None:
    person, record_ids = linked_person
    done = reference_run.lakehouse.output("explain", "--person", person)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"person {person}: {len(record_ids)} records" in done.stdout
    for record_id in record_ids:
        assert record_id in done.stdout
    assert "scored pairs between them" in done.stdout


def test_explain_pair_weights_add_up_to_the_match_weight(
    reference_run: ReferenceRun, linked_person: tuple[str, list[str]]
) -> None:
    _, record_ids = linked_person
    pairs = DeltaTable(str(reference_run.lakehouse.table_paths()["mpi.scored_pairs"])).to_pandas()
    within = pairs[pairs["record_id_l"].isin(record_ids) & pairs["record_id_r"].isin(record_ids)]
    best = within.sort_values("match_weight", ascending=False).iloc[0]
    done = reference_run.lakehouse.output("explain", "--pair", best["record_id_r"], best["record_id_l"])
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:3] == ["term", "level", "weight_bits"])
    rows = lines[header + 1 : next(i for i, line in enumerate(lines) if line.startswith("probability"))]
    weights = [float(line.split()[-1]) for line in rows]
    assert rows[0].split()[0] == "prior" and rows[-1].strip().startswith("match weight")
    assert sum(weights[:-1]) == pytest.approx(weights[-1], abs=0.01 * len(weights))
    assert weights[-1] == pytest.approx(float(best["match_weight"]), abs=0.01)
    assert f"probability {float(best['match_probability']):.4f}" in done.stdout
    assert len(rows) - 2 == sum(1 for c in pd.Index(pairs.columns) if c.startswith("weight_"))


def test_explain_unknown_person_is_a_usage_error(reference_run: ReferenceRun) -> None:
    done = reference_run.lakehouse.output("explain", "--person", "no-such-person")
    assert done.returncode == EXIT_USAGE
    assert "no record has person id no-such-person" in done.stderr
