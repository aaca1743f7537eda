"""Monitoring deployed versions: drift of inputs and predictions, and performance over time."""
