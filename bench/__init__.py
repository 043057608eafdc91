"""Benchmarks, run by hand: ``uv run python -m bench.<name>``."""
