"""Model adapters: built-in baselines and a ``module:callable`` adapter."""

from evalledger.models.base import Completion, Model

__all__ = ["Completion", "Model"]
