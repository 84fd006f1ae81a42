"""Benchmarks: `python -m benchmarks NAME [--quick]`; see benchmarks/harness.py."""
