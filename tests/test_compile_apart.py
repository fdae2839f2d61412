"""Compile time apart: after ``warm_kernels`` a run compiles nothing, so its wall time and
events per second are the simulation's (a first run's compilation is ``compile_seconds``)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

_PROBE = """
import gc, json, sys
from numba.core.registry import CPUDispatcher
from dccsim.bench.compose import simulate, warm_kernels

def signatures():
    return {f"{d.py_func.__module__}.{d.py_func.__qualname__}": sorted(map(str, d.signatures))
            for d in gc.get_objects() if isinstance(d, CPUDispatcher)}

warm_kernels()
before = signatures()
res = [simulate(name, out=f"{sys.argv[1]}/{name}", scale=scale).summary
       for name, scale in (("smoke", None), ("mhhs-comms-pressure", 0.002), ("alert-storm", None))]
after = signatures()
new = {k: sorted(set(v) - set(before.get(k, []))) for k, v in after.items()}
print(json.dumps({"new": {k: v for k, v in new.items() if v}, "compile": [s.compile_seconds for s in res]}))
"""


def test_no_kernel_compiles_inside_a_timed_run(tmp_path: Path) -> None:
    # a fresh interpreter: in this one, other tests have loaded every kernel already
    done = subprocess.run([sys.executable, "-c", _PROBE, str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["new"] == {}, f"kernels compiled during the timed run: {got['new']}"
    assert all(isinstance(c, float) and c >= 0 for c in got["compile"])
    summary = json.loads((tmp_path / "smoke" / "summary.json").read_text())
    assert summary["compile_seconds"] is not None and summary["wall_seconds"] > 0
