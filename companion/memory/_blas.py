"""Run small numpy work on one BLAS thread.

A recall is a few tiny matmuls; OpenBLAS splits them over all cores anyway, and on a
busy 2-core laptop its spinning threads turn a 10 ms query into 100+ ms. OpenBLAS >= 0.3.27
has `openblas_set_num_threads_local`, which changes only the calling thread, so the
engine running elsewhere in the process keeps its threads.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
from collections.abc import Callable, Iterator
from pathlib import Path


@functools.cache
def _local_setter() -> Callable[[int], int] | None:
    import numpy as np

    root = Path(np.__file__).parent
    for folder in (root.parent / "numpy.libs", root / ".dylibs", root.parent / "numpy.libs" / "lib"):
        for lib in sorted(folder.glob("*openblas*")) if folder.is_dir() else []:
            try:
                fn = ctypes.CDLL(str(lib)).openblas_set_num_threads_local
            except (OSError, AttributeError):
                continue
            fn.argtypes, fn.restype = [ctypes.c_int], ctypes.c_int
            return fn
    return None


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    """Within the block, this thread's BLAS calls use one thread (no-op if unsupported)."""
    fn = _local_setter()
    if fn is None:
        yield
        return
    previous = fn(1)
    try:
        yield
    finally:
        fn(previous)
