"""Monitoring deployed versions: drift of inputs and predictions, and performance over time.

Above the SDK: it reads data and the registry through ``covex.Client`` and records what it finds on
the version (``client.monitoring``). See ``covex.monitoring.monitor`` for the functions below.
"""

from covex.monitoring.monitor import add_labels, check, make_reference, reference_of, run_all

__all__ = ["add_labels", "check", "make_reference", "reference_of", "run_all"]
