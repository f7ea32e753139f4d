"""Benchmarks: the interface, the bundled arithmetic problems and file loaders.

Registered under the ``evalledger.benchmarks`` entry points. May import the core, and
``scorers/`` for the default answer extraction.
"""

from evalledger.benchmarks.base import Benchmark
from evalledger.plugin_types import Item, ItemScore

__all__ = ["Benchmark", "Item", "ItemScore"]
