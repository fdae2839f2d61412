"""The one jit policy of ``dccsim.cache``, and a memory prefetch hint for the kernels.

Every kernel in this package is compiled with the same options:

- ``cache=True``: compiled code is written beside the source (``__pycache__``), so a second
  process starts warm.
- ``nogil=True``: a kernel releases the GIL, so a caller may run shards on threads.
- ``error_model="numpy"``: no Python-style checks for division by zero in the hot loops.

``parallel`` and ``fastmath`` are off: the kernels are sequential integer loops over one
shard's state, where neither helps. Decorating a function compiles nothing; compilation
happens on the first call (or in :meth:`dccsim.cache.ReadingsCache.warm_up`).

:data:`jit_noalloc` is the same policy for kernels that allocate nothing, with Numba's
reference counting off (``_nrt=False``, which Numba rejects at compile time in a function
that allocates). With it on, every call from a kernel to a helper that takes the state
arrays costs atomic increments and decrements of their reference counts, which LLVM cannot
remove: measured on a store that expires one entry in a cache small enough for L1, 83 ns
with it and 43 ns without. The caller's references keep the arrays alive during a call.

:func:`prefetch` asks the CPU to start loading one array element into cache. The cache
kernels run branchy probe loops whose hit/miss branches are unpredictable; a mispredicted
branch stops the out-of-order core from running ahead to later operations' loads, so the
kernels hint the loads of operations a few steps ahead themselves. Measured on the
benchmark workload (1 M keys): about 1.4x throughput. With ``NUMBA_DISABLE_JIT=1`` it is a
no-op Python function, so kernel bodies still run (and are covered) as plain Python.
"""

from __future__ import annotations

import functools
from typing import Any

import numba

__all__ = ["jit", "jit_noalloc", "prefetch", "JIT_ENABLED"]

jit = functools.partial(numba.njit, cache=True, nogil=True, error_model="numpy")
jit_noalloc = functools.partial(jit, _nrt=False)

#: False when ``NUMBA_DISABLE_JIT=1``: kernels then run as plain Python.
JIT_ENABLED: bool = not numba.config.DISABLE_JIT

if JIT_ENABLED:
    from llvmlite import ir
    from numba import types
    from numba.core import cgutils
    from numba.extending import intrinsic

    @intrinsic
    def prefetch(typingctx: Any, arr: Any, idx: Any) -> Any:
        """Hint a read of ``arr[idx]`` (1-D array) into all cache levels; no effect on results."""
        if not isinstance(arr, types.Array) or arr.ndim != 1:
            return None
        if not isinstance(idx, types.Integer):
            return None
        sig = types.void(arr, idx)

        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            aryty = signature.args[0]
            ary = context.make_array(aryty)(context, builder, args[0])
            ptr = cgutils.get_item_pointer(
                context, builder, aryty, ary, [args[1]], wraparound=False, boundscheck=False
            )
            i8p = ir.IntType(8).as_pointer()
            i32 = ir.IntType(32)
            fnty = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
            fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
            # (address, rw=0 read, locality=3 keep in all levels, cache type=1 data)
            flags = [ir.Constant(i32, 0), ir.Constant(i32, 3), ir.Constant(i32, 1)]
            builder.call(fn, [builder.bitcast(ptr, i8p), *flags])
            return context.get_dummy_value()

        return sig, codegen

else:

    def prefetch(arr: Any, idx: Any) -> None:  # type: ignore[misc]
        """No-op stand-in used when the JIT is disabled."""
