"""The one jit policy of ``dccsim.throttle``, and a memory prefetch hint for the kernels.

Every kernel in this package is compiled with the same options:

- ``cache=True``: compiled code is written beside the source (``__pycache__``), so a second
  process starts warm.
- ``nogil=True``: a kernel releases the GIL, so shards (or the settings of a tuning sweep)
  can run on threads.
- ``error_model="numpy"``: no Python-style division checks in the hot loops.
- ``_nrt=False``: Numba's reference counting off. No kernel here allocates (Numba rejects
  ``_nrt=False`` at compile time in a function that does), and with it on, a call from a
  kernel to a helper taking arrays can cost atomic increments and decrements per call that
  LLVM cannot remove (measured: a per-alert prefetch helper made the fixed-window kernel
  2.5x slower). The caller's references keep the arrays alive during a call.

``parallel`` and ``fastmath`` are off: the kernels are sequential integer loops over one
shard's state, where neither helps. Decorating a function compiles nothing; compilation
happens on the first call (or in :meth:`dccsim.throttle.Throttle.warm_up`).

:func:`prefetch` asks the CPU to start loading one array element into cache. State records are
read at random (one per alert) and the branches that follow the read depend on it; hinting
the record of an alert a few positions ahead keeps several memory reads in flight.
With ``NUMBA_DISABLE_JIT=1`` it is a no-op Python function, so kernel bodies still run (and
are covered) as plain Python.
"""

from __future__ import annotations

import functools
from typing import Any

import numba

__all__ = ["jit", "prefetch", "JIT_ENABLED"]

jit = functools.partial(numba.njit, cache=True, nogil=True, error_model="numpy", _nrt=False)

#: False when ``NUMBA_DISABLE_JIT=1``: kernels then run as plain Python.
JIT_ENABLED: bool = not numba.config.DISABLE_JIT

if JIT_ENABLED:
    from llvmlite import ir
    from numba import types
    from numba.core import cgutils
    from numba.extending import intrinsic

    @intrinsic
    def prefetch(typingctx: Any, arr: Any, row: Any, col: Any) -> Any:
        """Hint a write of ``arr[row, col]`` (C-contiguous 2-D array); no effect on results."""
        if not isinstance(arr, types.Array) or arr.ndim != 2 or arr.layout != "C":
            return None
        if not isinstance(row, types.Integer) or not isinstance(col, types.Integer):
            return None
        sig = types.void(arr, row, col)

        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            aryty = signature.args[0]
            ary = context.make_array(aryty)(context, builder, args[0])
            ptr = cgutils.get_item_pointer(
                context,
                builder,
                aryty,
                ary,
                [args[1], args[2]],
                wraparound=False,
                boundscheck=False,
            )
            i8p = ir.IntType(8).as_pointer()
            i32 = ir.IntType(32)
            fnty = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
            fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
            # (address, rw=1 for write: the record is updated, locality=3, data cache)
            builder.call(
                fn,
                [
                    builder.bitcast(ptr, i8p),
                    ir.Constant(i32, 1),
                    ir.Constant(i32, 3),
                    ir.Constant(i32, 1),
                ],
            )
            return context.get_dummy_value()

        return sig, codegen

else:

    def prefetch(arr: Any, row: Any, col: Any) -> None:  # type: ignore[misc]
        """No-op stand-in used when the JIT is disabled."""
