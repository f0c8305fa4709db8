"""Deterministic randomness as Spark Column expressions.

Every draw is a pure function of the seed, a purpose (the salt) and the ids it is about, computed with
Spark's `xxhash64`; nothing depends on partitioning, task order or the driver, so the same seed gives the
same value for the same person and record on any cluster. No overflowing arithmetic is used: Spark 4 runs
in ANSI mode, where integer overflow is an error.
"""

from __future__ import annotations

import functools
import hashlib
import math

from pyspark.sql import Column
from pyspark.sql import functions as F

_TWO_POW_53 = float(1 << 53)
SLICE_BITS = 21
SLICES_PER_HASH = 3
FEISTEL_ROUNDS = 3
_MASK_31 = (1 << 31) - 1


class Draws:
    """Hash-based random draws for one seed; every method returns a Column.

    The seed and the salt are folded on the driver into one 64-bit constant that leads the hashed values,
    so each row hashes only a long and its keys.
    """

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def salt_constant(self, salt: str) -> int:
        """The signed 64-bit constant that stands for (seed, salt) in every hash."""
        digest = hashlib.sha256(f"{self.seed}\x00{salt}".encode()).digest()
        return int.from_bytes(digest[:8], "big", signed=True)

    def hash(self, salt: str, *keys: Column | str | int) -> Column:
        """A 64-bit signed hash of the seed, the salt and the keys (long)."""
        return F.xxhash64(_long_literal(self.salt_constant(salt)), *[_as_column(k) for k in keys])

    def u(self, salt: str, *keys: Column | str | int) -> Column:
        """A double uniform on [0, 1) from the top 53 bits of the hash."""
        return F.try_divide(F.shiftrightunsigned(self.hash(salt, *keys), 11), _unit_scale())

    def chance(self, probability: Column | float, salt: str, *keys: Column | str | int) -> Column:
        """True with the given probability (a boolean Column)."""
        return self.u(salt, *keys) < _as_column(probability)

    def integer(self, low: Column | int, high: Column | int, salt: str, *keys: Column | str | int) -> Column:
        """An int uniform on [low, high], both ends included."""
        lo, hi = _as_column(low), _as_column(high)
        return (lo + F.floor(self.u(salt, *keys) * (hi - lo + 1))).cast("int")

    def normal(self, salt: str, *keys: Column | str | int) -> Column:
        """A standard normal double (Box-Muller on two uniforms)."""
        return self.normal_from(self.u(f"{salt}#1", *keys), self.u(f"{salt}#2", *keys))

    @staticmethod
    def normal_from(u1: Column, u2: Column) -> Column:
        """A standard normal double from two uniforms on [0, 1) (Box-Muller)."""
        return F.sqrt(F.lit(-2.0) * F.log(F.lit(1.0) - u1)) * F.cos(F.lit(2.0 * math.pi) * u2)

    def pick(self, values: list[str], salt: str, *keys: Column | str | int) -> Column:
        """One of `values` with equal probability (string Column)."""
        index = F.floor(self.u(salt, *keys) * len(values)).cast("int")
        return F.get(string_array(values), index)

    def weighted(self, values: list[str], weights: list[float], salt: str, *keys: Column | str | int) -> Column:
        """One of a few `values` with the given relative weights (string Column)."""
        total = float(sum(weights))
        u = self.u(salt, *keys)
        expr: Column = F.lit(values[-1])
        cumulative = 0.0
        branches: list[tuple[float, str]] = []
        for value, weight in zip(values[:-1], weights[:-1], strict=True):
            cumulative += weight / total
            branches.append((cumulative, value))
        for bound, value in reversed(branches):
            expr = F.when(u < F.lit(bound), F.lit(value)).otherwise(expr)
        return expr

    def slices(self, hashed: Column, count: int = SLICES_PER_HASH) -> list[Column]:
        """Up to three independent uniforms on [0, 1) (21 bits each) cut from one 64-bit hash Column.

        Staging a hash as a column and slicing it is much cheaper, to plan and to run, than hashing again for
        every decision; 21 bits resolve probabilities down to about one in two million.
        """
        if not 1 <= count <= SLICES_PER_HASH:
            raise ValueError(f"one hash gives 1 to {SLICES_PER_HASH} uniforms, not {count}")
        mask, scale = F.lit((1 << SLICE_BITS) - 1), _slice_scale()
        return [
            F.try_divide(F.shiftrightunsigned(hashed, 64 - SLICE_BITS * (i + 1)).bitwiseAND(mask), scale)
            for i in range(count)
        ]

    def feistel(self, code: Column, salt: str) -> Column:
        """A bijection of the non-negative 62-bit longs: equal inputs give equal outputs, distinct give distinct.

        Three Feistel rounds (Luby-Rackoff: a pseudorandom permutation) over two 31-bit halves, each round
        keyed by the seed, the salt and the round number, so the output reveals nothing about the input
        without the seed.
        """
        left = F.shiftright(code, 31).bitwiseAND(F.lit(_MASK_31))
        right = code.bitwiseAND(F.lit(_MASK_31))
        for round_number in range(FEISTEL_ROUNDS):
            mixed = self.hash(f"{salt}#feistel{round_number}", right).bitwiseAND(F.lit(_MASK_31))
            left, right = right, left.bitwiseXOR(mixed)
        return F.shiftleft(left, 31).bitwiseOR(right)


@functools.lru_cache(maxsize=4096)
def _long_literal(value: int) -> Column:
    """A bigint literal (Python ints beyond 32 bits are bigint literals already)."""
    return F.lit(value) if not -(2**31) <= value < 2**31 else F.lit(value).cast("long")


def _as_column(value: Column | str | int | float) -> Column:
    """A Column as is; a Python value as a literal (strings are literals here, not column names)."""
    return value if isinstance(value, Column) else F.lit(value)


def string_array(values: list[str] | tuple[str, ...]) -> Column:
    """An array<string> literal built from one string literal (the optimizer folds it to a constant)."""
    return _string_array(tuple(values))


def int_array(values: list[int] | tuple[int, ...]) -> Column:
    """An array<int> literal built from one string literal (folded to a constant by the optimizer)."""
    return _int_array(tuple(values))


def double_array(values: list[float] | tuple[float, ...]) -> Column:
    """An array<double> literal built from one string literal (folded to a constant by the optimizer)."""
    return _double_array(tuple(values))


# Column expressions are immutable, so the few reference literals are built once per process.
@functools.lru_cache(maxsize=256)
def _string_array(values: tuple[str, ...]) -> Column:
    if any(_SEPARATOR in v for v in values):
        raise ValueError("reference values must not contain the unit separator character")
    return F.split(F.lit(_SEPARATOR.join(values)), _SEPARATOR)


@functools.lru_cache(maxsize=256)
def _int_array(values: tuple[int, ...]) -> Column:
    return F.split(F.lit(",".join(str(v) for v in values)), ",").cast("array<int>")


@functools.lru_cache(maxsize=256)
def _double_array(values: tuple[float, ...]) -> Column:
    return F.split(F.lit(",".join(repr(float(v)) for v in values)), ",").cast("array<double>")


_SEPARATOR = "\u001f"


@functools.lru_cache(maxsize=1)
def _unit_scale() -> Column:
    return F.lit(_TWO_POW_53)


@functools.lru_cache(maxsize=1)
def _slice_scale() -> Column:
    return F.lit(float(1 << SLICE_BITS))


class UniformPool:
    """Hands out uniforms one by one from staged hash columns (three per hash), so draws stay cheap.

    `columns` are the names of hash columns already on the DataFrame; asking for more uniforms than they
    hold is a programming error.
    """

    def __init__(self, draws: Draws, columns: list[str]) -> None:
        self._slices = [u for name in columns for u in draws.slices(F.col(name))]
        self._next = 0

    def take(self) -> Column:
        """The next unused uniform."""
        if self._next >= len(self._slices):
            raise ValueError("not enough staged hashes for the uniforms requested")
        self._next += 1
        return self._slices[self._next - 1]


def hash_columns(draws: Draws, prefix: str, salt: str, count: int, *keys: Column) -> dict[str, Column]:
    """`count` hash columns `<prefix>0`, `<prefix>1`, ... of the keys, to stage before drawing from them."""
    return {f"{prefix}{i}": draws.hash(f"{salt}#{i}", *keys) for i in range(count)}
