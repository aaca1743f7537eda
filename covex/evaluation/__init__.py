"""Comparing versions fairly: every version scored on the same rows, with intervals and paired tests."""
