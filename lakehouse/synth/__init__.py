"""Synthetic partner data: a deterministic Spark job that writes one delivery of every feed into landing.

`generate(spark, settings, people, seed)` simulates the life courses of `people` Californians born in the
configured years (K-12, college, financial aid, teaching credentials, Medi-Cal and CalFresh/CalWORKs spans,
quarterly wages), writes each partner's files exactly as its feed YAML describes them, with the identity
noise and row defects real extracts have, and writes the ground truth (which person every row belongs to)
outside landing for evaluating entity resolution.
"""

from lakehouse.synth.generate import FeedResult, GenerateResult, generate

__all__ = ["FeedResult", "GenerateResult", "generate"]
