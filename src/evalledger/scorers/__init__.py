"""Scorers: turn a model's output into a score for one item.

Registered under the ``evalledger.scorers`` entry points. May import the core, and
``models/`` for the judge's model.
"""

from evalledger.plugin_types import ItemScore
from evalledger.scorers.base import Scorer

__all__ = ["ItemScore", "Scorer"]
