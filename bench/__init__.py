"""Benchmarks: each module ``bench_*.py`` exposes ``run() -> dict[str, Result]`` and measures its
baseline in the same run."""
