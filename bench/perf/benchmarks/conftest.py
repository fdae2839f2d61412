"""The benchmark suite (pytest-benchmark), outside the default test run: ``make bench``.

Every benchmark sits beside a **reference** doing the same work another way (or, for whole
runs, a fixed yardstick of plain-Python and NumPy work), measured in the same session on the
same machine. What carries across machines is the ratio ``ours / reference`` of their times
(fastest rounds: noise on a shared machine only ever adds time), so that is what
``make bench-compare`` gates on (see ``dccsim compare``), never the absolute times.

Convention for a benchmark module (``test_bench_*.py`` here)::

    def test_decode_ours(benchmark, payload):
        benchmark.group = "decode"                   # ours and its reference share a group
        benchmark.extra_info["role"] = "ours"        # or "reference": one per group
        result = benchmark(decode, payload)
        assert result == expected                    # correctness of what was timed

A group has exactly one ``reference`` and any number of ``ours``; a reference test is also
marked ``@pytest.mark.reference``, so ``-m "not reference"`` runs ours alone (the regression
gate, :mod:`dccsim.bench.perf.gate`, compares two builds' ours and skips the references). Warm JIT-compiled code
before the timed call. A benchmark long enough for the machine's load to change between it
and its reference may time the reference itself in each round's untimed set-up and record
``extra_info["paired_ratio"]``: that is then used instead (see ``test_bench_e2e.py``).
At the end of the session the ratios are printed, and written into the JSON file
(``--benchmark-json``) under ``"ratios"``.
"""

from __future__ import annotations

from typing import Any

import pytest

_RESULTS: list[dict[str, Any]] = []


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "reference: the reference of a benchmark group (another way to do the work)")


@pytest.fixture(autouse=True)
def _collect_benchmark(request: pytest.FixtureRequest) -> Any:
    """After each benchmark, keep its group, role and median for the ratio summary."""
    if "benchmark" not in request.fixturenames:
        yield
        return
    bench = request.getfixturevalue("benchmark")  # set up first, so it is torn down after us
    yield
    stats = getattr(bench, "stats", None)
    if stats is None:  # --benchmark-disable, or the test failed before timing
        return
    _RESULTS.append(
        {
            "name": request.node.name,
            "group": bench.group,
            "extra_info": dict(bench.extra_info),
            "stats": {"min": stats.stats.min, "median": stats.stats.median},
        }
    )


def pytest_terminal_summary(terminalreporter: Any) -> None:
    from dccsim.bench.results.compare import session_ratios

    lines = session_ratios(_RESULTS)
    if lines:
        terminalreporter.section("ratios: ours / reference (lower is faster)")
        for line in lines:
            terminalreporter.write_line(line)


def pytest_benchmark_update_json(config: Any, benchmarks: Any, output_json: dict[str, Any]) -> None:
    from dccsim.bench.results.compare import bench_ratios

    output_json["ratios"] = {
        name: {"ratio": ratio, "reference": ref}
        for name, (_, ratio, ref) in bench_ratios(output_json["benchmarks"]).items()
    }
