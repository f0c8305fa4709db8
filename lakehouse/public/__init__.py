"""Public zone: gold marts aggregated for everyone, with small-cell and complementary suppression."""

from lakehouse.public.build import PUBLIC_TABLES, build_public, public_tables, student_pathways_spec
from lakehouse.public.suppression import SuppressionError, SuppressionSpec, suppress

__all__ = [
    "PUBLIC_TABLES",
    "SuppressionError",
    "SuppressionSpec",
    "build_public",
    "public_tables",
    "student_pathways_spec",
    "suppress",
]
