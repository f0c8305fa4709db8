"""Which builder makes the rows of which feed (`<partner>_<feed>`), its record-key prefix and expected size."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pyspark.sql import DataFrame

from lakehouse.synth import aid, college, credentials, k12, services, wages
from lakehouse.synth.context import FeedContext


@dataclass(frozen=True)
class FeedSpec:
    """How to generate one feed: the builder, the prefix of its record keys, and rows per person.

    `rows_per_person` (measured on 5,000 people with the default settings) sizes the number of files before anything is
    counted; it need not be exact.
    """

    build: Callable[[FeedContext], DataFrame]
    key_prefix: str
    rows_per_person: float


FEEDS: dict[str, FeedSpec] = {
    "cde_k12_enrollment": FeedSpec(k12.k12_enrollment, "E", 9.8),
    "cde_k12_graduation": FeedSpec(k12.k12_graduation, "G", 0.8),
    "cde_k12_assessment": FeedSpec(k12.k12_assessment, "A", 10.6),
    "cccco_ccc_enrollment": FeedSpec(college.ccc_enrollment, "T", 1.5),
    "cccco_ccc_awards": FeedSpec(college.ccc_awards, "W", 0.06),
    "csu_csu_enrollment": FeedSpec(college.csu_enrollment, "S", 1.4),
    "csu_csu_degrees": FeedSpec(college.csu_degrees, "D", 0.12),
    "ucop_uc_enrollment": FeedSpec(college.uc_enrollment, "U", 1.0),
    "ucop_uc_degrees": FeedSpec(college.uc_degrees, "D", 0.07),
    "csac_aid_applications": FeedSpec(aid.aid_applications, "FA", 1.5),
    "csac_cal_grant_awards": FeedSpec(aid.cal_grant_awards, "CG", 0.5),
    "ctc_credentials": FeedSpec(credentials.credentials, "CR", 0.02),
    "dhcs_medi_cal_enrollment": FeedSpec(services.medi_cal_enrollment, "M", 0.7),
    "dss_program_participation": FeedSpec(services.program_participation, "SP", 0.37),
    "edd_ui_wages": FeedSpec(wages.ui_wages, "Q", 24.5),
}


def feed_spec(feed_key: str) -> FeedSpec:
    """The spec of feed `<partner>_<feed>`; a feed without a builder is an error that names it."""
    try:
        return FEEDS[feed_key]
    except KeyError:
        known = ", ".join(sorted(FEEDS))
        raise ValueError(f"no synthetic generator for feed {feed_key} (generated feeds: {known})") from None
