"""Person-level fact tables, one per domain, declared as `FactSpec`s and built by one generic transform.

Every fact reads one or more silver feed tables, keeps only non-identifying columns (renamed to a common
vocabulary when several sources are unioned), links each row to person_id through the crosswalk and
collapses the rows to the fact's grain: the grain columns plus person_id. Within a grain, `latest`
columns come from the most recently ingested source row (then the greater source file and line number),
`sum` columns add up and `any` columns are true when any row is true; n_source_rows counts the rows
collapsed, so the sum of n_source_rows equals the number of source rows. Record ids, the partners' own
row ids and lineage columns never reach gold.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import reduce
from typing import Literal

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from lakehouse.gold.columns import academic_year_of_date, lookup, term_academic_year, term_start_date, term_suffix
from lakehouse.gold.config import MEDI_CAL_PROGRAM, GoldConfig
from lakehouse.gold.linking import with_person_id

logger = logging.getLogger(__name__)

SEGMENTS = ("CCC", "CSU", "UC")
"""Postsecondary segments, as the `segment` column spells them."""

PERSON_ID_COMMENT = "Person key from mpi.crosswalk; joins to dim_person"
N_SOURCE_ROWS_COMMENT = "Number of source rows (after linkage) collapsed into this row"
_LINEAGE_ORDER = ("ingested_at", "source_file", "line_number")

Rule = Literal["grain", "latest", "sum", "any"]


@dataclass(frozen=True)
class FactColumn:
    """One fact column: Spark SQL type, comment, and how rows of one grain combine (`rule`)."""

    name: str
    type: str
    comment: str
    rule: Rule = "latest"


@dataclass(frozen=True)
class FactSource:
    """One silver feed feeding a fact: fact column -> silver column, plus constant columns."""

    feed: str
    columns: Mapping[str, str]
    constants: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class FactSpec:
    """A gold fact table: its grain, its sources, its columns and the columns derived after collapsing."""

    name: str
    grain: str
    description: str
    sources: tuple[FactSource, ...]
    columns: tuple[FactColumn, ...]
    derived: tuple[FactColumn, ...] = ()
    derive: Callable[[DataFrame, GoldConfig], DataFrame] | None = None
    partition_by: tuple[str, ...] = ()
    """Partition columns of the table (a year, so a dashboard's year filter reads one folder)."""
    sort_by: tuple[str, ...] = ()
    """Order of rows within each file (geography and institution first), so Parquet min/max statistics let a
    filter on them skip row groups."""
    expect_not_null: tuple[str, ...] = ()
    """Derived columns a null in which means conf/gold.yaml could not interpret a source value (logged)."""

    @property
    def grain_columns(self) -> list[str]:
        return ["person_id", *(c.name for c in self.columns if c.rule == "grain")]

    @property
    def output_columns(self) -> list[str]:
        return ["person_id", *(c.name for c in (*self.columns, *self.derived)), "n_source_rows"]

    @property
    def feeds(self) -> list[str]:
        return [source.feed for source in self.sources]

    def comment(self) -> str:
        """Table comment: grain first, then what the table holds and where it comes from."""
        return f"Grain: {self.grain}. {self.description} Sources: {', '.join(f'silver.{f}' for f in self.feeds)}."

    def column_comments(self) -> dict[str, str]:
        comments = {"person_id": PERSON_ID_COMMENT, "n_source_rows": N_SOURCE_ROWS_COMMENT}
        for column in (*self.columns, *self.derived):
            comments[column.name] = column.comment
        return comments


def source_rows(silver: DataFrame, source: FactSource, spec: FactSpec) -> DataFrame:
    """One row per silver row: record_id, lineage order columns and every fact column, renamed and typed."""
    fact_columns = []
    for column in spec.columns:
        if column.name in source.columns:
            value = F.col(source.columns[column.name])
        elif column.name in source.constants:
            value = F.lit(source.constants[column.name])
        else:
            value = F.lit(None)
        fact_columns.append(value.cast(column.type).alias(column.name))
    return silver.select("record_id", *_LINEAGE_ORDER, *fact_columns)


def collapse_to_grain(rows: DataFrame, spec: FactSpec) -> DataFrame:
    """One row per grain of `spec` (person_id and its grain columns), with n_source_rows."""
    latest = [c.name for c in spec.columns if c.rule == "latest"]
    aggregates = [F.count(F.lit(1)).alias("n_source_rows")]
    for column in spec.columns:
        if column.rule == "sum":
            aggregates.append(F.sum(column.name).cast(column.type).alias(column.name))
        elif column.rule == "any":
            aggregates.append(F.max(column.name).alias(column.name))
    if latest:
        order = F.struct(*_LINEAGE_ORDER)
        aggregates.append(F.max_by(F.struct(*latest), order).alias("_latest"))
    collapsed = rows.groupBy(*spec.grain_columns).agg(*aggregates)
    if latest:
        collapsed = collapsed.select("*", *(F.col(f"_latest.{c}").alias(c) for c in latest)).drop("_latest")
    return collapsed


def build_fact(spec: FactSpec, silver: Mapping[str, DataFrame], crosswalk: DataFrame, config: GoldConfig) -> DataFrame:
    """The fact table of `spec` (grain: `spec.grain`) from its silver feed tables and the crosswalk.

    Rows whose record_id has no crosswalk row would get a null person_id: check them with
    `lakehouse.gold.linking.check_all_linked` first (build_gold does).
    """
    missing = [feed for feed in spec.feeds if feed not in silver]
    if missing:
        raise ValueError(f"{spec.name} needs silver feed tables {', '.join(missing)}")
    rows = reduce(DataFrame.unionByName, [source_rows(silver[s.feed], s, spec) for s in spec.sources])
    fact = rows.transform(with_person_id, crosswalk).transform(collapse_to_grain, spec)
    if spec.derive is not None:
        fact = spec.derive(fact, config)
    return fact.select(*spec.output_columns)


# --------------------------------------------------------------------------------------------------
# derivations


def with_term_fields(enrollment: DataFrame, config: GoldConfig) -> DataFrame:
    """Add academic_year, term and term_start_date parsed from term_code with the terms of conf/gold.yaml."""
    terms = config.postsecondary.terms
    code = F.col("term_code")
    return enrollment.withColumns(
        {
            "academic_year": term_academic_year(code, terms),
            "term": term_suffix(code, terms),
            "term_start_date": term_start_date(code, terms),
        }
    )


def with_award_level(awards: DataFrame, config: GoldConfig) -> DataFrame:
    """Add award_level (from award_type, per conf/gold.yaml) and academic_year of the award date."""
    return awards.withColumns(
        {
            "award_level": lookup(F.col("award_type"), config.postsecondary.award_levels),
            "academic_year": academic_year_of_date(F.col("award_date")),
        }
    )


# --------------------------------------------------------------------------------------------------
# the facts

_SCHOOL_YEAR = "School year, as its spring year (2015 = 2014-15)"
_COUNTY = "2-digit county code"

FACT_K12_ENROLLMENT = FactSpec(
    name="fact_k12_enrollment",
    partition_by=("school_year",),
    sort_by=("county_code", "district_code", "school_code"),
    grain="one row per person per school year per school",
    description="K-12 fall-census enrollment.",
    sources=(
        FactSource(
            "cde_k12_enrollment",
            {
                c: c
                for c in (
                    "school_year",
                    "school_code",
                    "grade_level",
                    "district_code",
                    "county_code",
                    "is_sed",
                    "is_english_learner",
                )
            },
        ),
    ),
    columns=(
        FactColumn("school_year", "int", _SCHOOL_YEAR, "grain"),
        FactColumn("school_code", "string", "7-digit CDS school code", "grain"),
        FactColumn("grade_level", "string", "Grade level (KN, 01-12)"),
        FactColumn("district_code", "string", "District code of the school"),
        FactColumn("county_code", "string", f"{_COUNTY} of the school"),
        FactColumn("is_sed", "boolean", "Socioeconomically disadvantaged (true if any source row says so)", "any"),
        FactColumn("is_english_learner", "boolean", "English learner (true if any source row says so)", "any"),
    ),
)

FACT_K12_GRADUATION = FactSpec(
    name="fact_k12_graduation",
    partition_by=("school_year",),
    sort_by=("county_code", "district_code", "school_code"),
    grain="one row per person per school year per school per completion type",
    description="High-school completions (diplomas, CHSPE, GED, adult-school).",
    sources=(
        FactSource(
            "cde_k12_graduation",
            {
                c: c
                for c in (
                    "school_year",
                    "school_code",
                    "completion_type",
                    "district_code",
                    "county_code",
                    "is_a_g_complete",
                )
            },
        ),
    ),
    columns=(
        FactColumn("school_year", "int", f"{_SCHOOL_YEAR} of the completion", "grain"),
        FactColumn("school_code", "string", "7-digit CDS code of the completing school", "grain"),
        FactColumn("completion_type", "string", "HSD diploma, CHSPE, GED or ADULT", "grain"),
        FactColumn("district_code", "string", "District code of the school"),
        FactColumn("county_code", "string", f"{_COUNTY} of the school"),
        FactColumn("is_a_g_complete", "boolean", "Met the UC/CSU a-g course requirements", "any"),
    ),
)

FACT_K12_ASSESSMENT = FactSpec(
    name="fact_k12_assessment",
    partition_by=("school_year",),
    sort_by=("school_code", "subject"),
    grain="one row per person per school year per tested subject",
    description="Statewide assessment results (grades 3-8 and 11).",
    sources=(
        FactSource(
            "cde_k12_assessment",
            {
                c: c
                for c in ("school_year", "subject", "grade_level", "school_code", "scale_score", "achievement_level")
            },
        ),
    ),
    columns=(
        FactColumn("school_year", "int", _SCHOOL_YEAR, "grain"),
        FactColumn("subject", "string", "ELA or MATH", "grain"),
        FactColumn("grade_level", "string", "Grade level when tested"),
        FactColumn("school_code", "string", "7-digit CDS code of the testing school"),
        FactColumn("scale_score", "int", "Scale score"),
        FactColumn("achievement_level", "int", "Achievement level, 1 (not met) to 4 (exceeded)"),
    ),
)

FACT_POSTSECONDARY_ENROLLMENT = FactSpec(
    name="fact_postsecondary_enrollment",
    partition_by=("academic_year",),
    sort_by=("segment", "institution_code", "term_code"),
    grain="one row per person per segment per institution per term",
    description="Term enrollment at community colleges (CCC), CSU and UC campuses, unioned.",
    sources=(
        FactSource(
            "cccco_ccc_enrollment",
            {"institution_code": "college_code", "term_code": "term_code", "units_attempted": "units_attempted"},
            {"segment": "CCC"},
        ),
        FactSource(
            "csu_csu_enrollment",
            {
                "institution_code": "campus_code",
                "term_code": "term_code",
                "units_attempted": "units_attempted",
                "student_level": "student_level",
            },
            {"segment": "CSU"},
        ),
        FactSource(
            "ucop_uc_enrollment",
            {"institution_code": "campus_code", "term_code": "term_code"},
            {"segment": "UC"},
        ),
    ),
    columns=(
        FactColumn("segment", "string", "Postsecondary segment: CCC, CSU or UC", "grain"),
        FactColumn("institution_code", "string", "College (CCC) or campus (CSU, UC) code", "grain"),
        FactColumn("term_code", "string", "Term as delivered: calendar year and term, e.g. 2019FA", "grain"),
        FactColumn("units_attempted", "decimal(5,1)", "Units attempted in the term (null for UC)"),
        FactColumn("student_level", "string", "CSU student level (FTF, TRANSFER, CONTINUING, GRAD); null elsewhere"),
    ),
    derived=(
        FactColumn("academic_year", "int", "Academic year of the term, as its spring year (conf/gold.yaml terms)"),
        FactColumn("term", "string", "Term of term_code (FA, WI, SP, SU); null when term_code does not parse"),
        FactColumn("term_start_date", "date", "Start date of the term (conf/gold.yaml terms)"),
    ),
    derive=with_term_fields,
    expect_not_null=("term_start_date",),
)

FACT_POSTSECONDARY_AWARD = FactSpec(
    name="fact_postsecondary_award",
    partition_by=("academic_year",),
    sort_by=("segment", "institution_code", "award_level"),
    grain="one row per person per segment per institution per award type per award date",
    description="Certificates and degrees: CCC awards, CSU and UC degrees, unioned.",
    sources=(
        FactSource(
            "cccco_ccc_awards",
            {
                "institution_code": "college_code",
                "award_type": "award_type",
                "award_date": "award_date",
                "program_code": "program_code",
            },
            {"segment": "CCC"},
        ),
        FactSource(
            "csu_csu_degrees",
            {
                "institution_code": "campus_code",
                "award_type": "degree_type",
                "award_date": "degree_date",
                "major_cip": "major_cip",
            },
            {"segment": "CSU"},
        ),
        FactSource(
            "ucop_uc_degrees",
            {
                "institution_code": "campus_code",
                "award_type": "degree_type",
                "award_date": "degree_date",
                "major_cip": "major_cip",
            },
            {"segment": "UC"},
        ),
    ),
    columns=(
        FactColumn("segment", "string", "Postsecondary segment: CCC, CSU or UC", "grain"),
        FactColumn("institution_code", "string", "College (CCC) or campus (CSU, UC) code", "grain"),
        FactColumn(
            "award_type", "string", "CCC award type (AA, AS, ADT, CERT) or degree type (BA, BS, MA, ...)", "grain"
        ),
        FactColumn("award_date", "date", "Date the award was conferred", "grain"),
        FactColumn("program_code", "string", "TOP code of the CCC program; null for CSU and UC"),
        FactColumn("major_cip", "string", "CIP code of the CSU or UC major; null for CCC"),
    ),
    derived=(
        FactColumn("award_level", "string", "certificate, associate, bachelor, master or doctorate"),
        FactColumn("academic_year", "int", "July-June academic year of award_date, as its spring year"),
    ),
    derive=with_award_level,
    expect_not_null=("award_level",),
)

FACT_FINANCIAL_AID_APPLICATION = FactSpec(
    name="fact_financial_aid_application",
    partition_by=("award_year",),
    sort_by=("application_type",),
    grain="one row per person per award year per application type",
    description="FAFSA and California Dream Act (CADAA) applications.",
    sources=(
        FactSource(
            "csac_aid_applications",
            {c: c for c in ("award_year", "application_type", "high_school_code", "student_aid_index")},
        ),
    ),
    columns=(
        FactColumn("award_year", "int", "Award year, as its fall year", "grain"),
        FactColumn("application_type", "string", "FAFSA or CADAA", "grain"),
        FactColumn("high_school_code", "string", "High school the applicant reported"),
        FactColumn("student_aid_index", "int", "Student Aid Index"),
    ),
)

FACT_FINANCIAL_AID_AWARD = FactSpec(
    name="fact_financial_aid_award",
    partition_by=("award_year",),
    sort_by=("grant_type", "institution_code"),
    grain="one row per person per award year per grant type per institution",
    description="Cal Grant awards; amounts of awards sharing a grain are added.",
    sources=(
        FactSource(
            "csac_cal_grant_awards",
            {c: c for c in ("award_year", "grant_type", "institution_code", "amount")},
        ),
    ),
    columns=(
        FactColumn("award_year", "int", "Award year, as its fall year", "grain"),
        FactColumn("grant_type", "string", "Cal Grant A, B or C", "grain"),
        FactColumn("institution_code", "string", "Institution attended", "grain"),
        FactColumn("amount", "decimal(12,2)", "Award amount in dollars (sum over source rows)", "sum"),
    ),
)

FACT_TEACHER_CREDENTIAL = FactSpec(
    name="fact_teacher_credential",
    grain="one row per person per credential type per subject area per issue date",
    description="Teaching credentials issued.",
    sources=(
        FactSource(
            "ctc_credentials",
            {c: c for c in ("credential_type", "subject_area", "issue_date", "expiration_date")},
        ),
    ),
    columns=(
        FactColumn("credential_type", "string", "PRELIMINARY, CLEAR, INTERN or EMERGENCY", "grain"),
        FactColumn("subject_area", "string", "Subject area of the credential", "grain"),
        FactColumn("issue_date", "date", "Date issued", "grain"),
        FactColumn("expiration_date", "date", "Date it expires"),
    ),
)

FACT_PROGRAM_PARTICIPATION = FactSpec(
    name="fact_program_participation",
    grain="one row per person per program per span start date",
    description="Social-service participation spans: Medi-Cal (DHCS), CalFresh and CalWORKs (DSS), unioned.",
    sources=(
        FactSource(
            "dhcs_medi_cal_enrollment",
            {c: c for c in ("start_date", "end_date", "county_code", "aid_code")},
            {"program": MEDI_CAL_PROGRAM},
        ),
        FactSource(
            "dss_program_participation",
            {c: c for c in ("program", "start_date", "end_date", "county_code")},
        ),
    ),
    columns=(
        FactColumn("program", "string", f"{MEDI_CAL_PROGRAM}, CALFRESH or CALWORKS", "grain"),
        FactColumn("start_date", "date", "First day of the span", "grain"),
        FactColumn("end_date", "date", "Last day of the span; null while open"),
        FactColumn("county_code", "string", f"{_COUNTY} of the case"),
        FactColumn("aid_code", "string", "Medi-Cal aid code; null for DSS programs"),
    ),
)

FACT_QUARTERLY_WAGES = FactSpec(
    name="fact_quarterly_wages",
    sort_by=("quarter", "employer_id"),
    grain="one row per person per employer per calendar quarter",
    description="Unemployment-insurance base wages; wages of rows sharing a grain are added.",
    sources=(FactSource("edd_ui_wages", {c: c for c in ("employer_id", "year", "quarter", "naics", "wages")}),),
    columns=(
        FactColumn("employer_id", "string", "EDD employer account", "grain"),
        FactColumn("year", "int", "Calendar year", "grain"),
        FactColumn("quarter", "int", "Calendar quarter, 1-4", "grain"),
        FactColumn("naics", "string", "NAICS industry code of the employer"),
        FactColumn("wages", "decimal(14,2)", "Wages paid in the quarter in dollars (sum over source rows)", "sum"),
    ),
    partition_by=("year",),
)

FACTS: tuple[FactSpec, ...] = (
    FACT_K12_ENROLLMENT,
    FACT_K12_GRADUATION,
    FACT_K12_ASSESSMENT,
    FACT_POSTSECONDARY_ENROLLMENT,
    FACT_POSTSECONDARY_AWARD,
    FACT_FINANCIAL_AID_APPLICATION,
    FACT_FINANCIAL_AID_AWARD,
    FACT_TEACHER_CREDENTIAL,
    FACT_PROGRAM_PARTICIPATION,
    FACT_QUARTERLY_WAGES,
)
"""Every gold fact, in build order."""
