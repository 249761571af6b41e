"""Benchmarks (run with `python -m bench.<name>`; figures come from runs, never asserted)."""
