"""Running a coroutine to completion from synchronous code, whatever the calling thread runs."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run_coroutine(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """asyncio.run(make()), on a thread of its own where this thread already runs an event loop
    (a notebook, a GUI, Playwright's sync API), where asyncio.run would refuse."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make())
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="companion-async") as pool:
        return pool.submit(lambda: asyncio.run(make())).result()
