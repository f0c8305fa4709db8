"""Column -> Column standardization of identity values, shared by silver and entity resolution.

Every function takes a Column and returns a Column; a null input gives a null output, and a value that
is empty or invalid after standardization becomes null too (so "missing" has one spelling). They are
native Spark expressions except the HMAC tokens (`hmac_tokenizer`), which have to run Python's `hmac` (Spark
has no HMAC function) and do so in vectorized (Arrow) pandas UDFs.
"""

from __future__ import annotations

import hmac
import unicodedata
from functools import reduce

import pandas as pd
from pyspark.sql import Column
from pyspark.sql import functions as F
from pyspark.sql.pandas.functions import pandas_udf

# --------------------------------------------------------------------------------------------------
# accent folding


LATIN_BLOCKS = ((0x00C0, 0x0250), (0x1E00, 0x1F00))
"""Latin-1 Supplement letters, Latin Extended-A and -B, and Latin Extended Additional (Vietnamese ễ, ạ, ...)."""


def _accent_map() -> tuple[str, str]:
    """(accented, base) letter strings for `translate`, covering `LATIN_BLOCKS`.

    Built once at import from Unicode's own decompositions (NFKD: "É" -> "E" + combining acute), so
    the table is complete for those blocks; the few letters that have no decomposition (Ø, Đ, Ł, ...)
    are added by hand. Ligatures that become two letters (Æ, Œ, Þ, ß, Ĳ) are in `_LIGATURES`.
    """
    accented, base = [], []
    for code in (c for start, end in LATIN_BLOCKS for c in range(start, end)):
        char = chr(code)
        decomposed = unicodedata.normalize("NFKD", char)
        first = decomposed[0]
        if char != first and first.isascii() and first.isalpha():
            accented.append(char)
            base.append(first)
    for char, plain in {
        "Ø": "O",
        "ø": "o",
        "Đ": "D",
        "đ": "d",
        "Ð": "D",
        "ð": "d",
        "Ł": "L",
        "ł": "l",
        "Ħ": "H",
        "ħ": "h",
        "Ŧ": "T",
        "ŧ": "t",
        "ı": "i",
        "ĸ": "k",
        "Ŋ": "N",
        "ŋ": "n",
    }.items():
        if char not in accented:
            accented.append(char)
            base.append(plain)
    return "".join(accented), "".join(base)


ACCENTED_LETTERS, BASE_LETTERS = _accent_map()
_LIGATURES = {"[Ææ]": "AE", "[Œœ]": "OE", "[Þþ]": "TH", "ß": "SS", "[Ĳĳ]": "IJ", "ŉ": "N"}

APOSTROPHES = "'’‘`´ʼ"
"""Characters dropped inside words (O'Brien -> OBRIEN) rather than turned into a space."""


def fold_accents(col: Column | str) -> Column:
    """Accented Latin letters replaced by their base letters (É -> E, ß -> SS); case is kept.

    Combining marks (a decomposed "e" + U+0301) are removed too, so composed and decomposed input
    fold to the same text.
    """
    value = F.col(col) if isinstance(col, str) else col
    translated = F.translate(value, ACCENTED_LETTERS, BASE_LETTERS)
    unligatured = reduce(lambda c, kv: F.regexp_replace(c, kv[0], kv[1]), _LIGATURES.items(), translated)
    folded = F.regexp_replace(unligatured, r"\p{M}+", "")
    # Text of one byte per character (UTF-8) is ASCII: nothing to fold, and most names are, so they skip the
    # translation and the seven regular expressions above.
    return F.when(F.octet_length(value) == F.length(value), value).otherwise(folded)


def _column(col: Column | str) -> Column:
    return F.col(col) if isinstance(col, str) else col


def _null_if_empty(col: Column) -> Column:
    return F.nullif(col, F.lit(""))


# --------------------------------------------------------------------------------------------------
# names and places


def standardize_name(col: Column | str) -> Column:
    """Name: accents folded, upper case, apostrophes dropped, every other non-letter run -> one space.

    "  José  O'Brien-Smith " -> "JOSE OBRIEN SMITH"; "--" -> null. Hyphens become spaces (not nothing)
    so a hyphenated surname keeps its parts as separate tokens for comparison.
    """
    upper = F.upper(fold_accents(_column(col)))
    no_apostrophes = F.translate(upper, APOSTROPHES, "")
    letters = F.regexp_replace(no_apostrophes, r"[^A-Z]+", " ")
    return _null_if_empty(F.trim(letters))


def standardize_city(col: Column | str) -> Column:
    """City: the name rules (letters and single spaces, upper case, accents folded)."""
    return standardize_name(col)


ADDRESS_ABBREVIATIONS: dict[str, str] = {
    "STREET": "ST",
    "AVENUE": "AVE",
    "AV": "AVE",
    "BOULEVARD": "BLVD",
    "ROAD": "RD",
    "DRIVE": "DR",
    "LANE": "LN",
    "COURT": "CT",
    "PLACE": "PL",
    "TERRACE": "TER",
    "CIRCLE": "CIR",
    "HIGHWAY": "HWY",
    "PARKWAY": "PKWY",
    "EXPRESSWAY": "EXPY",
    "FREEWAY": "FWY",
    "SQUARE": "SQ",
    "TRAIL": "TRL",
    "APARTMENT": "APT",
    "SUITE": "STE",
    "NUMBER": "NO",
}
"""Whole-word USPS-style abbreviations of street suffixes and unit designators (one map lookup per word)."""


def standardize_address(col: Column | str) -> Column:
    """Street address: upper case, accents folded, punctuation -> space, single spaces, suffixes abbreviated.

    "123 Main Street, Apt. #4" -> "123 MAIN ST APT 4".
    """
    upper = F.upper(fold_accents(_column(col)))
    words = F.trim(F.regexp_replace(F.translate(upper, APOSTROPHES, ""), r"[^A-Z0-9]+", " "))
    abbreviations = F.create_map(*[F.lit(part) for pair in ADDRESS_ABBREVIATIONS.items() for part in pair])
    abbreviated = F.transform(F.split(words, " "), lambda word: F.coalesce(F.try_element_at(abbreviations, word), word))
    return _null_if_empty(F.array_join(abbreviated, " "))


def standardize_zip5(col: Column | str) -> Column:
    """Five-digit ZIP code from "95814", "95814-1234" or "958141234"; anything else (and 00000) -> null."""
    five = F.regexp_extract(F.trim(_column(col)), r"^([0-9]{5})(-?[0-9]{4})?$", 1)
    return F.when(five != F.lit("00000"), _null_if_empty(five))


def zip3(zip5: Column | str) -> Column:
    """First three digits of a standardized five-digit ZIP code."""
    return F.substring(_column(zip5), 1, 3)


def standardize_code(col: Column | str) -> Column:
    """A code value (race/ethnicity group, county): trimmed, upper case, empty -> null."""
    return _null_if_empty(F.upper(F.trim(_column(col))))


# --------------------------------------------------------------------------------------------------
# identifiers


INVALID_SSNS: tuple[str, ...] = ("123456789", "012345678", "078051120", "219099999")
"""Well-known placeholder or publicly misused SSNs (sequential digits, the Woolworth and SSA-ad cards).

Repeated-digit values (111111111 ... 999999999) and the structurally invalid ranges are rejected by
rule in `standardize_ssn`, not listed here.
"""


def standardize_ssn(col: Column | str) -> Column:
    """SSN as 9 digits, or null when it is not a valid, issuable number.

    Spaces, dashes and dots are removed; what is left must be exactly 9 digits. Invalid: area 000, 666
    or 900-999; group 00; serial 0000; one digit repeated nine times; the placeholders in `INVALID_SSNS`.
    """
    digits = F.regexp_replace(_column(col), r"[\s.\-]", "")
    area, group, serial = F.substring(digits, 1, 3), F.substring(digits, 4, 2), F.substring(digits, 6, 4)
    is_valid = (
        digits.rlike(r"^[0-9]{9}$")
        & ~area.isin("000", "666")
        & (F.substring(digits, 1, 1) != F.lit("9"))
        & (group != F.lit("00"))
        & (serial != F.lit("0000"))
        & ~digits.rlike(r"^([0-9])\1{8}$")
        & ~digits.isin(*INVALID_SSNS)
    )
    return F.when(is_valid, digits)


def standardize_id(col: Column | str) -> Column:
    """Student or local id (SSID, campus id, CIN): trimmed, upper case, letters and digits only."""
    return _null_if_empty(F.regexp_replace(F.upper(_column(col)), r"[^A-Z0-9]", ""))


# --------------------------------------------------------------------------------------------------
# gender and dates

GENDER_SPELLINGS: dict[str, tuple[str, ...]] = {
    "M": ("M", "MALE", "MAN", "BOY", "MASCULINE"),
    "F": ("F", "FEMALE", "WOMAN", "GIRL", "FEMININE", "W"),
    "X": ("X", "NONBINARY", "NB", "NONBINARYX", "GENDERQUEER", "INTERSEX", "NONCONFORMING"),
}
"""Standard code -> accepted spellings (upper case, letters only: "Non-binary" -> "NONBINARY")."""


def standardize_gender(col: Column | str) -> Column:
    """Gender code M, F or X from codes and common spellings ("female", "Non-binary"); anything else -> null."""
    key = F.regexp_replace(F.upper(_column(col)), r"[^A-Z]", "")
    (first_code, first_spellings), *others = GENDER_SPELLINGS.items()
    result = F.when(key.isin(*first_spellings), F.lit(first_code))
    for code, spellings in others:
        result = result.when(key.isin(*spellings), F.lit(code))
    return result


def parse_date(col: Column | str, date_format: str) -> Column:
    """Date parsed with a Spark datetime pattern; a value that does not parse (or 2021-02-30) -> null."""
    return F.to_date(F.try_to_timestamp(F.trim(_column(col)), F.lit(date_format)))


EARLIEST_BIRTH_DATE = "1900-01-01"


def standardize_birth_date(date: Column | str) -> Column:
    """A parsed birth date kept only when plausible: from 1900-01-01 up to today; otherwise null."""
    value = _column(date)
    return F.when(value.between(F.lit(EARLIEST_BIRTH_DATE).cast("date"), F.current_date()), value)


def birth_year(date: Column | str) -> Column:
    """Year of a birth date, int."""
    return F.year(_column(date))


def birth_month(date: Column | str) -> Column:
    """Month (1-12) of a birth date, int."""
    return F.month(_column(date))


def birth_day(date: Column | str) -> Column:
    """Day of month (1-31) of a birth date, int."""
    return F.dayofmonth(_column(date))


# --------------------------------------------------------------------------------------------------
# keyed tokens


VARIANT_TOKEN_HEX_DIGITS = 32
"""Variant tokens are cut to 128 bits: they are compared for overlap only, never reversed or joined at scale."""


def deletion_variants(value: str) -> list[str]:
    """The distinct strings left by deleting one character of `value` ("1234" -> "234", "134", "124", "123").

    Two values that differ by one substituted character, or by two adjacent characters swapped, share at least
    one deletion variant; two different random 9-digit numbers almost never do.
    """
    return sorted({value[:i] + value[i + 1 :] for i in range(len(value))})


class HmacTokenizer:
    """Column functions that turn identifiers into HMAC-SHA256 tokens under one secret key.

    Spark has no HMAC function, and building one from `sha2` would need the key as a literal, which
    Spark prints in plans and logs. So the digests run in vectorized pandas UDFs (one Arrow batch per
    call, Python's C-implemented `hmac.digest`) whose closures hold the key: plans show only the
    function names; the key travels to executors inside the pickled functions, like any closure, and is
    never a Column, a literal or a table value.
    """

    def __init__(self, key: bytes) -> None:
        if not isinstance(key, bytes) or not key:
            raise ValueError("hmac_tokenizer needs a non-empty bytes key")

        def digest(value: object) -> str | None:
            if not isinstance(value, str):
                return None
            return hmac.digest(key, value.encode("utf-8"), "sha256").hex()

        def variants(value: object, namespace: str) -> list[str] | None:
            if not isinstance(value, str):
                return None
            return sorted(
                hmac.digest(key, f"{namespace}~{v}".encode(), "sha256").hex()[:VARIANT_TOKEN_HEX_DIGITS]
                for v in deletion_variants(value)
            )

        @pandas_udf("string")  # type: ignore[call-overload,untyped-decorator]
        def hmac_sha256(values: pd.Series) -> pd.Series:
            return pd.Series([digest(v) for v in values], index=values.index, dtype="object")

        @pandas_udf("array<string>")  # type: ignore[call-overload,untyped-decorator]
        def hmac_deletion_variants(values: pd.Series, namespaces: pd.Series) -> pd.Series:
            return pd.Series(
                [variants(v, str(n)) for v, n in zip(values, namespaces, strict=True)],
                index=values.index,
                dtype="object",
            )

        self._token = hmac_sha256
        self._variants = hmac_deletion_variants

    def __call__(self, col: Column | str) -> Column:
        """HMAC-SHA256 hex digest of each (UTF-8) value; null stays null."""
        column: Column = self._token(_column(col))
        return column

    def variants(self, col: Column | str, namespace: str) -> Column:
        """Sorted tokens (128-bit HMAC hex) of the one-character deletion variants of each value; null stays null.

        `namespace` (such as "ssn") keeps the variants of two identifiers apart. Two records whose arrays overlap
        have values one typo apart (a digit replaced or two adjacent digits swapped): linkage compares them
        without ever seeing the values.
        """
        column: Column = self._variants(_column(col), F.lit(namespace))
        return column


def hmac_tokenizer(key: bytes) -> HmacTokenizer:
    """The HMAC tokenizer for `key` (see `HmacTokenizer`); calling it on a Column gives the full-value token."""
    return HmacTokenizer(key)
