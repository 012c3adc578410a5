"""Benchmarks, run as modules (`python -m bench.parse_bench`); not part of the test suite."""
