"""Identity conformance: each feed row's identity columns standardized, and silver.person_records.

A feed row's identity (the columns with an `identity:` role) is standardized with the functions of
`standardize`. Rows of one partner whose standardized values are all equal are one record. The HMAC
tokens are computed once per distinct identity, not once per row (a student has a row per school year),
and `record_id` is a hash of the partner, the tokens and the other standardized values: never of a raw
SSN or id, so the id cannot be reversed by hashing candidate SSNs.

`identity_key` links feed rows to their record inside one silver build. It is an unkeyed hash of the
standardized values (SSN included), so it is never written to a table.
"""

from __future__ import annotations

from collections.abc import Mapping

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from lakehouse.config import FeedConfig
from lakehouse.silver.standardize import (
    HmacTokenizer,
    birth_day,
    birth_month,
    birth_year,
    parse_date,
    standardize_address,
    standardize_birth_date,
    standardize_city,
    standardize_code,
    standardize_gender,
    standardize_id,
    standardize_name,
    standardize_ssn,
    standardize_zip5,
    zip3,
)

STANDARDIZED_SCHEMA = T.StructType(
    [
        T.StructField("local_id", T.StringType()),
        T.StructField("ssn", T.StringType()),
        T.StructField("ssid", T.StringType()),
        T.StructField("first_name", T.StringType()),
        T.StructField("middle_name", T.StringType()),
        T.StructField("last_name", T.StringType()),
        T.StructField("birth_date", T.DateType()),
        T.StructField("gender", T.StringType()),
        T.StructField("race_ethnicity", T.StringType()),
        T.StructField("address_line", T.StringType()),
        T.StructField("city", T.StringType()),
        T.StructField("zip5", T.StringType()),
    ]
)
STANDARDIZED = tuple(STANDARDIZED_SCHEMA.fieldNames())
PREFIX = "std_"
IDENTITY_ROWS_SCHEMA = T.StructType(
    [
        T.StructField("partner", T.StringType()),
        T.StructField("feed", T.StringType()),
        T.StructField("identity_key", T.StringType()),
        *STANDARDIZED_SCHEMA.fields,
    ]
)

PERSON_RECORD_COLUMNS = (
    "record_id",
    "partner",
    "feeds",
    "n_rows",
    "local_id_token",
    "ssn_token",
    "ssid_token",
    "ssn_variant_tokens",
    "ssid_variant_tokens",
    "first_name",
    "middle_name",
    "last_name",
    "birth_date",
    "birth_year",
    "birth_month",
    "birth_day",
    "gender",
    "race_ethnicity",
    "address_line",
    "city",
    "zip5",
    "zip3",
)
RECORD_ID_LENGTH = 32


def standardized_values(raw: Mapping[str, Column], date_format: str | None) -> dict[str, Column]:
    """Standardized value of every identity role from the raw columns in `raw` (role -> Column).

    Roles `raw` lacks are null literals. `date_format` is the Spark datetime pattern of raw["birth_date"]
    (default yyyy-MM-dd). Silver feeds and `lakehouse link`'s outside files both standardize through here.
    """

    def value(role: str) -> Column:
        return raw[role] if role in raw else F.lit(None).cast("string")

    if "birth_date" in raw:
        birth_date = standardize_birth_date(parse_date(raw["birth_date"], date_format or "yyyy-MM-dd"))
    else:
        birth_date = F.lit(None).cast("date")
    return {
        "local_id": standardize_id(value("local_id")),
        "ssn": standardize_ssn(value("ssn")),
        "ssid": standardize_id(value("ssid")),
        "first_name": standardize_name(value("first_name")),
        "middle_name": standardize_name(value("middle_name")),
        "last_name": standardize_name(value("last_name")),
        "birth_date": birth_date,
        "gender": standardize_gender(value("gender")),
        "race_ethnicity": standardize_code(value("race_ethnicity")),
        "address_line": standardize_address(value("address_line")),
        "city": standardize_city(value("city")),
        "zip5": standardize_zip5(value("zip")),
    }


def standardized_identity(feed: FeedConfig) -> dict[str, Column]:
    """Standardized value of every identity role of a feed (null literal for roles the feed does not carry)."""
    roles = feed.identity_columns()
    date_format = feed.column(roles["birth_date"]).format if "birth_date" in roles else None
    return standardized_values({role: F.col(column) for role, column in roles.items()}, date_format)


def with_identity(rows: DataFrame, feed: FeedConfig) -> DataFrame:
    """Add std_<role> (standardized identity values) and identity_key (hash of partner and all of them)."""
    standardized = {f"{PREFIX}{name}": value for name, value in standardized_identity(feed).items()}
    with_values = rows.withColumns(standardized)
    key_values = F.struct(F.lit(feed.partner).alias("partner"), *[F.col(c) for c in standardized])
    return with_values.withColumn("identity_key", F.sha2(F.to_json(key_values, {"ignoreNullFields": "false"}), 256))


def identity_rows(rows: DataFrame, feed: FeedConfig) -> DataFrame:
    """One row per feed row: partner, feed, identity_key and the standardized values (schema IDENTITY_ROWS_SCHEMA).

    `rows` must come from `with_identity`.
    """
    return rows.select(
        F.lit(feed.partner).alias("partner"),
        F.lit(feed.name).alias("feed"),
        F.col("identity_key"),
        *[F.col(f"{PREFIX}{name}").alias(name) for name in STANDARDIZED],
    )


def record_id(partner: Column, *values: Column) -> Column:
    """32 hex characters of the SHA-256 of the partner and the identity values (nulls spelled out)."""
    fields = [partner.alias("partner"), *values]
    return F.substring(F.sha2(F.to_json(F.struct(*fields), {"ignoreNullFields": "false"}), 256), 1, RECORD_ID_LENGTH)


def person_records(identities: DataFrame, tokenize: HmacTokenizer) -> DataFrame:
    """One row per distinct standardized identity per partner: the person_records columns plus identity_key.

    feeds: the sorted names of the partner's feeds the identity appears in; n_rows: its silver rows.
    Tokens: HMAC of the standardized SSN and SSID, and of "<partner>:<local id>", so the same local id
    at two partners gives two different tokens; and the tokens of the SSN's and SSID's one-digit-deleted
    variants, so linkage can tell a typo (variants overlap) from a different number.
    """
    grouped = identities.groupBy("identity_key", "partner", *STANDARDIZED).agg(
        F.sort_array(F.collect_set("feed")).alias("feeds"),
        F.count(F.lit(1)).cast("long").alias("n_rows"),
    )
    tokens = grouped.withColumns(
        {
            "local_id_token": tokenize(F.concat(F.col("partner"), F.lit(":"), F.col("local_id"))),
            "ssn_token": tokenize("ssn"),
            "ssid_token": tokenize("ssid"),
            "ssn_variant_tokens": tokenize.variants("ssn", "ssn"),
            "ssid_variant_tokens": tokenize.variants("ssid", "ssid"),
        }
    )
    hashed = [
        "local_id_token",
        "ssn_token",
        "ssid_token",
        *[name for name in STANDARDIZED if name not in ("local_id", "ssn", "ssid")],
    ]
    return tokens.withColumns(
        {
            "record_id": record_id(F.col("partner"), *[F.col(c) for c in hashed]),
            "birth_year": birth_year("birth_date"),
            "birth_month": birth_month("birth_date"),
            "birth_day": birth_day("birth_date"),
            "zip3": zip3("zip5"),
        }
    ).select("identity_key", *PERSON_RECORD_COLUMNS)
