"""Benchmarks: the interface and the bundled arithmetic word problems."""

from evalledger.benchmarks.base import Benchmark, Item, ItemScore

__all__ = ["Benchmark", "Item", "ItemScore"]
