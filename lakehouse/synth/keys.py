"""Identifiers: SSNs, SSIDs, partner-local ids and record keys, all bijective so they never collide.

An identifier is a permutation of the person id: `(a * id + b) mod M` with `a` coprime to `M` is a bijection
of [0, M), so two people never share an SSN, SSID or campus id by accident (only by design: shared SSNs,
duplicate SSIDs). The multipliers come from the seed; products stay below 2**63 (ANSI mode forbids overflow)
because ids are below 2**31 and multipliers below 2**31.
"""

from __future__ import annotations

import hashlib
import math

from pyspark.sql import Column
from pyspark.sql import functions as F

from lakehouse.synth.draws import Draws

MAX_PEOPLE = 100_000_000
"""Largest population: 8-digit partner ids (Medi-Cal CIN) must stay unique."""

SSN_AREAS = 898  # 001-899 without 666
SSN_SPACE = SSN_AREAS * 99 * 9999
SSID_SPACE = 9_000_000_000
PLACEHOLDER_SSNS = ("000000000", "123456789", "999999999")
RECORD_KEY_LENGTH = 12
"""Base-36 characters after the prefix of a record key (36**12 > 2**62, the permuted row codes)."""
ROW_CODE_BITS = 24
"""A row code is person_id * 2**24 + an event code below 2**24 that is unique for the person within the feed."""


def stable_int(seed: int, purpose: str, modulus: int) -> int:
    """A driver-side integer in [0, modulus) from the seed and a purpose (for constants, never per row)."""
    digest = hashlib.sha256(f"{seed}:{purpose}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % modulus


def coprime_multiplier(seed: int, purpose: str, modulus: int) -> int:
    """A multiplier below 2**31 coprime to `modulus`, chosen by the seed."""
    candidate = (1 << 30) + stable_int(seed, purpose, 1 << 30)
    while math.gcd(candidate, modulus) != 1:
        candidate += 1
    return candidate


def permuted(seed: int, purpose: str, value: Column, modulus: int, shift: Column | None = None) -> Column:
    """`value` (long, below 2**31) mapped one-to-one onto [0, modulus) (long)."""
    multiplier = coprime_multiplier(seed, purpose, modulus)
    offset = F.lit(stable_int(seed, f"{purpose}#offset", modulus))
    if shift is not None:
        offset = F.pmod(offset + shift, F.lit(modulus))
    return F.pmod(value * F.lit(multiplier) + offset, F.lit(modulus))


def ssn_of(seed: int, person_id: Column) -> Column:
    """The 9-digit SSN of a person (string): a valid area (not 000, 666 or 9xx), group and serial."""
    x = permuted(seed, "ssn", person_id, SSN_SPACE)
    area_index = F.floor(x / F.lit(99 * 9999))
    rest = F.pmod(x, F.lit(99 * 9999))
    area = area_index + 1 + F.when(area_index + 1 >= 666, 1).otherwise(0)
    group = F.floor(rest / F.lit(9999)) + 1
    serial = F.pmod(rest, F.lit(9999)) + 1
    return F.concat(
        F.lpad(area.cast("string"), 3, "0"),
        F.lpad(group.cast("string"), 2, "0"),
        F.lpad(serial.cast("string"), 4, "0"),
    )


def ssid_of(seed: int, number: Column) -> Column:
    """A 10-digit statewide student id (string) for `number` (a person id, or id + people for a second SSID)."""
    return (F.lit(1_000_000_000) + permuted(seed, "ssid", number, SSID_SPACE)).cast("string")


def local_id(seed: int, purpose: str, person_id: Column, digits: int, scope: Column | None = None) -> Column:
    """A partner-local numeric id of `digits` digits (string), unique per person within `scope` (e.g. a campus)."""
    modulus = 10**digits
    shift = None if scope is None else F.pmod(F.xxhash64(F.lit(seed), F.lit(purpose), scope), F.lit(modulus))
    return F.lpad(permuted(seed, purpose, person_id, modulus, shift).cast("string"), digits, "0")


def row_code(person_id: Column, event_code: Column) -> Column:
    """A long unique per data row of a feed, from the person and an event code below 2**24."""
    return F.shiftleft(person_id, ROW_CODE_BITS).bitwiseOR(event_code.cast("long"))


def record_key(draws: Draws, feed_key: str, prefix: str, code: Column) -> Column:
    """A partner-looking row id: prefix plus 12 base-36 characters of a keyed permutation of the row code.

    Unique per feed (the permutation is a bijection) and unrelated to the person without the seed.
    """
    scrambled = draws.feistel(code, f"record_key:{feed_key}")
    return F.concat(F.lit(prefix), F.lpad(F.conv(scrambled.cast("string"), 10, 36), RECORD_KEY_LENGTH, "0"))
