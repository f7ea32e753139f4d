"""Scorers: turn a model's output into a score for one item."""

from evalledger.scorers.base import ItemScore, Scorer

__all__ = ["ItemScore", "Scorer"]
