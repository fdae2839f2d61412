"""The one jit policy of ``dccsim.core``.

Every kernel in this package is compiled with the same options:

- ``cache=True``: compiled code is written beside the source, so a second process starts warm.
- ``nogil=True``: a kernel releases the GIL, so a caller may run shards on threads.
- ``error_model="numpy"``: no Python-style checks for division by zero in the hot loops.

``parallel`` and ``fastmath`` are left off: the kernels are sequential integer loops, where
neither helps. Decorating a function compiles nothing; compilation happens on the first call
with a given set of argument types.
"""

from __future__ import annotations

import functools

import numba

__all__ = ["jit"]

jit = functools.partial(numba.njit, cache=True, nogil=True, error_model="numpy")
