"""Model adapters: built-in baselines, any Python callable, and OpenAI-compatible endpoints.

Registered under the ``evalledger.models`` entry points. May import the core only
(the shared types come from :mod:`evalledger.plugin_types`).
"""

from evalledger.models.base import Model
from evalledger.plugin_types import Completion

__all__ = ["Completion", "Model"]
