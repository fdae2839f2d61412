"""Benchmark scripts (``python -m dccsim.bench.perf.NAME``) and, in ``benchmarks/``, the
pytest-benchmark suite that ``make bench`` runs. Each prints its figures beside a reference or
floor measured in the same run; none is part of the default test run."""
