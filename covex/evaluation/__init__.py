"""Comparing versions fairly: every version scored on the same rows, with intervals and paired tests."""

from covex.evaluation.compare import Comparison, compare
from covex.evaluation.online import compare_online

__all__ = ["Comparison", "compare", "compare_online"]
