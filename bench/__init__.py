"""Benchmarks: the router against the broker's own ceiling (``python -m bench [--quick]``)."""
