"""Cradle-to-career lakehouse: partner extracts to linked, de-identified Delta tables on Spark."""

__version__ = "0.1.0"
