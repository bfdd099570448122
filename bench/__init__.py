"""Benchmarks that print ratios and percentiles measured in one run (``python -m bench``)."""
