"""Comparing versions fairly: every version scored on the same rows, with intervals and paired tests."""

from covex.evaluation.compare import Comparison, compare

__all__ = ["Comparison", "compare"]
