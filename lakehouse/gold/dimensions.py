"""Gold dimensions of places, institutions and programs: the codes the facts use, named from the reference tables.

Each dimension holds every code that occurs in the facts (so a fact never points at a missing dimension
row) plus every code of the reference tables, with names where the reference knows the code
(`is_in_reference`). Codes are the partners' own: CDS codes for K-12 schools and districts, college and
campus codes for CCC, CSU and UC, TOP codes for community-college programs and CIP codes for majors.
"""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakehouse.gold.config import StudentGroups
from lakehouse.reference import read_table

DIM_INSTITUTION = "dim_institution"
DIM_PROGRAM = "dim_program"
DIM_GEOGRAPHY = "dim_geography"

K12_SECTOR = "K12"

DIM_INSTITUTION_COMMENT = (
    "Grain: one row per sector per institution code. K-12 schools (sector K12, 7-digit CDS school code) and "
    "CCC colleges and CSU and UC campuses (sector CCC, CSU, UC), with names, district and county from the "
    "reference directories, and the years the institution occurs in the facts."
)
DIM_INSTITUTION_COLUMNS = {
    "sector": "K12, CCC, CSU or UC",
    "institution_code": "School code (K12) or college/campus code; school_code and institution_code of the facts",
    "institution_name": "Name from the reference directory; null when the directory lacks the code",
    "school_level": "K-12 school level: E elementary, M middle, H high; null for colleges",
    "district_code": "District of a K-12 school; null for colleges",
    "county_code": "County of the school or college",
    "first_year": "First school or academic year (spring year) the institution occurs in the facts",
    "last_year": "Last school or academic year (spring year) the institution occurs in the facts",
    "is_in_reference": "True when the reference directory lists the code",
}

DIM_PROGRAM_COMMENT = (
    "Grain: one row per classification per program code. Community-college programs by TOP code "
    "(program_code of fact_postsecondary_award) and CSU and UC majors by CIP code (major_cip), with titles "
    "from the reference program list and what the awards of each program were."
)
DIM_PROGRAM_COLUMNS = {
    "classification": "TOP (Taxonomy of Programs, CCC) or CIP (Classification of Instructional Programs)",
    "program_code": "The TOP or CIP code",
    "program_title": "Title from the reference program list; null when the list lacks the code",
    "cip_family": "Two-digit CIP family (for TOP codes, of the CIP code the reference maps them to)",
    "segments": "Segments that conferred awards in the program",
    "award_levels": "Award levels conferred in the program",
    "n_awards": "Rows of fact_postsecondary_award in the program",
    "first_award_year": "First academic year (spring year) with an award in the program",
    "last_award_year": "Last academic year (spring year) with an award in the program",
    "is_in_reference": "True when the reference program list has the code",
}

DIM_GEOGRAPHY_COMMENT = (
    "Grain: one row per geography of the marts: the state, each county and each school district, keyed as "
    "the marts key them (geography_level, county_code, district_code), with names from the reference tables."
)
DIM_GEOGRAPHY_COLUMNS = {
    "geography_level": "state, county or district",
    "county_code": "County code; the statewide code (conf/gold.yaml) on the state row",
    "district_code": "District code on district rows; null otherwise",
    "geography_name": "Name of the state, county or district; null when the reference lacks the code",
    "county_name": "Name of the county (the state's name on the state row)",
    "is_in_reference": "True when the reference tables list the geography",
}
STATE_NAME = "California"


def reference_frame(spark: SparkSession, name: str, columns: dict[str, str]) -> DataFrame:
    """lakehouse/data/<name>.csv as a DataFrame of the given columns (csv column -> output column), strings."""
    rows = [tuple(row[c] for c in columns) for row in read_table(name)]
    return spark.createDataFrame(rows, ", ".join(f"{alias} string" for alias in columns.values()))


def dim_institution(
    spark: SparkSession,
    *,
    k12_enrollment: DataFrame,
    k12_graduation: DataFrame,
    k12_assessment: DataFrame,
    postsecondary_enrollment: DataFrame,
    postsecondary_awards: DataFrame,
) -> DataFrame:
    """dim_institution from the facts that name institutions and the school and college directories."""
    k12_seen = (
        k12_enrollment.select("school_code", "district_code", "county_code", "school_year")
        .unionByName(k12_graduation.select("school_code", "district_code", "county_code", "school_year"))
        .unionByName(k12_assessment.select("school_code", "school_year"), allowMissingColumns=True)
        .groupBy(F.lit(K12_SECTOR).alias("sector"), F.col("school_code").alias("institution_code"))
        .agg(
            F.max_by("district_code", F.struct(F.col("district_code").isNotNull(), "school_year")).alias("_district"),
            F.max_by("county_code", F.struct(F.col("county_code").isNotNull(), "school_year")).alias("_county"),
            F.min("school_year").alias("first_year"),
            F.max("school_year").alias("last_year"),
        )
    )
    college_seen = (
        postsecondary_enrollment.select("segment", "institution_code", "academic_year")
        .unionByName(postsecondary_awards.select("segment", "institution_code", "academic_year"))
        .groupBy(F.col("segment").alias("sector"), "institution_code")
        .agg(F.min("academic_year").alias("first_year"), F.max("academic_year").alias("last_year"))
    )
    seen = k12_seen.unionByName(college_seen, allowMissingColumns=True)
    schools = reference_frame(
        spark,
        "schools",
        {"school_code": "institution_code", "name": "_name", "level": "_level", "district_code": "_ref_district",
         "county_code": "_ref_county"},
    ).withColumn("sector", F.lit(K12_SECTOR))  # fmt: skip
    colleges = reference_frame(
        spark,
        "colleges",
        {"segment": "sector", "code": "institution_code", "name": "_name", "county_code": "_ref_county"},
    )
    directory = schools.unionByName(colleges, allowMissingColumns=True).withColumn("_listed", F.lit(True))
    is_k12 = F.col("sector") == F.lit(K12_SECTOR)
    return seen.join(directory, on=["sector", "institution_code"], how="full").select(
        "sector",
        "institution_code",
        F.col("_name").alias("institution_name"),
        F.col("_level").alias("school_level"),
        F.when(is_k12, F.coalesce("_ref_district", "_district")).alias("district_code"),
        F.coalesce("_ref_county", "_county").alias("county_code"),
        F.col("first_year").cast("int").alias("first_year"),
        F.col("last_year").cast("int").alias("last_year"),
        F.coalesce(F.col("_listed"), F.lit(False)).alias("is_in_reference"),
    )


def dim_program(spark: SparkSession, postsecondary_awards: DataFrame) -> DataFrame:
    """dim_program from the programs of fact_postsecondary_award and the reference program list."""
    awards = postsecondary_awards.select(
        "segment",
        "award_level",
        "academic_year",
        F.explode(
            F.array(
                F.struct(F.lit("TOP").alias("classification"), F.col("program_code").alias("code")),
                F.struct(F.lit("CIP").alias("classification"), F.col("major_cip").alias("code")),
            )
        ).alias("_program"),
    ).where(F.col("_program.code").isNotNull())
    seen = awards.groupBy(
        F.col("_program.classification").alias("classification"), F.col("_program.code").alias("program_code")
    ).agg(
        F.array_sort(F.collect_set("segment")).alias("segments"),
        F.array_sort(F.collect_set("award_level")).alias("award_levels"),
        F.count(F.lit(1)).alias("n_awards"),
        F.min("academic_year").alias("first_award_year"),
        F.max("academic_year").alias("last_award_year"),
    )
    programs = reference_frame(spark, "programs", {"cip": "_cip", "top_code": "_top", "title": "_title"})
    listed = programs.select(
        F.explode(
            F.array(
                F.struct(F.lit("TOP").alias("classification"), F.col("_top").alias("program_code")),
                F.struct(F.lit("CIP").alias("classification"), F.col("_cip").alias("program_code")),
            )
        ).alias("_code"),
        "_cip",
        "_title",
    ).select("_code.classification", "_code.program_code", "_cip", "_title", F.lit(True).alias("_listed"))
    listed = listed.dropDuplicates(["classification", "program_code"])
    cip = F.when(F.col("classification") == F.lit("CIP"), F.col("program_code")).otherwise(F.col("_cip"))
    return seen.join(listed, on=["classification", "program_code"], how="full").select(
        "classification",
        "program_code",
        F.col("_title").alias("program_title"),
        F.nullif(F.substring(cip, 1, 2), F.lit("")).alias("cip_family"),
        F.coalesce("segments", F.array().cast("array<string>")).alias("segments"),
        F.coalesce("award_levels", F.array().cast("array<string>")).alias("award_levels"),
        F.coalesce("n_awards", F.lit(0)).cast("long").alias("n_awards"),
        F.col("first_award_year").cast("int").alias("first_award_year"),
        F.col("last_award_year").cast("int").alias("last_award_year"),
        F.coalesce(F.col("_listed"), F.lit(False)).alias("is_in_reference"),
    )


def dim_geography(spark: SparkSession, institutions: DataFrame, groups: StudentGroups) -> DataFrame:
    """dim_geography: the state, the counties and the districts of the K-12 schools, named from the reference.

    Args:
        institutions: dim_institution (its K-12 rows give the district and county codes the facts use).
        groups: conf/gold.yaml student_groups (the statewide county code).
    """
    counties = reference_frame(spark, "counties", {"county_code": "county_code", "county_name": "county_name"})
    districts = reference_frame(
        spark, "districts", {"county_code": "county_code", "district_code": "district_code", "name": "geography_name"}
    )
    k12 = institutions.where(F.col("sector") == F.lit(K12_SECTOR))
    used_districts = k12.select("county_code", "district_code").where(F.col("district_code").isNotNull())
    used_counties = institutions.select("county_code").where(F.col("county_code").isNotNull())
    district_rows = (
        used_districts.join(districts.withColumn("_listed", F.lit(True)), ["county_code", "district_code"], "full")
        .join(counties, on="county_code", how="left")
        .select(F.lit("district").alias("geography_level"), "county_code", "district_code", "geography_name",
                "county_name", "_listed")
    )  # fmt: skip
    county_rows = (
        used_counties.join(counties.withColumn("_listed", F.lit(True)), on="county_code", how="full")
        .select(
            F.lit("county").alias("geography_level"),
            "county_code",
            F.lit(None).cast("string").alias("district_code"),
            F.col("county_name").alias("geography_name"),
            "county_name",
            "_listed",
        )
        .distinct()
    )
    state = spark.createDataFrame(
        [("state", groups.statewide_county_code, None, STATE_NAME, STATE_NAME, True)],
        "geography_level string, county_code string, district_code string, geography_name string, "
        "county_name string, _listed boolean",
    )
    return (
        state.unionByName(county_rows)
        .unionByName(district_rows.distinct())
        .select(
            "geography_level",
            "county_code",
            "district_code",
            "geography_name",
            "county_name",
            F.coalesce(F.col("_listed"), F.lit(False)).alias("is_in_reference"),
        )
    )
