"""The one Numba jit policy of ``dccsim.bench``.

Every kernel in this package is decorated with :data:`jit`, so the policy lives in one place:

- ``cache=True``: compiled machine code is written beside the module (``__pycache__``) and
  reused by later processes, so only the first run on a machine pays the compile time.
- ``nogil=True``: a kernel releases the GIL, so threads can run kernels side by side.
- ``error_model="numpy"``: division by zero gives ``inf``/``nan`` instead of raising, which
  lets Numba drop the zero check from inner loops.

Nothing is compiled at import: a kernel compiles on its first call (or when warmed with
:func:`dccsim.bench.results._kernels.warm_up`). ``parallel`` and ``fastmath`` are off; a kernel that
turns one on says why, with the measurement, next to it.

With ``NUMBA_DISABLE_JIT=1`` the decorator returns the plain Python function, which is how
the test suite checks kernel bodies under coverage.
"""

from __future__ import annotations

import functools

import numba

__all__ = ["jit"]

jit = functools.partial(numba.njit, cache=True, nogil=True, error_model="numpy")
