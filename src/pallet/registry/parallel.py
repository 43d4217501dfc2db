"""Run blob transfers in a few threads; the first failure cancels the rest."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Cancelled(Exception):
    """Raised inside a transfer when another one failed or the user interrupted."""


def run_all(fn: Callable[[T, threading.Event], R], items: Sequence[T], workers: int,
            name: str = "xfer") -> list[R]:
    """``[fn(item, cancel) for item in items]`` in ``workers`` threads.

    On the first error (or an interrupt in the caller) ``cancel`` is set, so
    transfers stop at their next chunk, pending ones never start, and that
    first error is raised once every thread has returned.
    """
    if not items:
        return []
    cancel = threading.Event()
    pool = ThreadPoolExecutor(max_workers=max(1, min(workers, len(items))),
                              thread_name_prefix=name)
    futs: list[Future[R]] = []
    try:
        futs = [pool.submit(fn, it, cancel) for it in items]
        done, _ = wait(futs, return_when=FIRST_EXCEPTION)
        failed = [f for f in futs if f.done() and not f.cancelled() and f.exception()]
        if failed:
            cancel.set()
            for f in futs:
                f.cancel()
            real = [f.exception() for f in failed
                    if not isinstance(f.exception(), Cancelled)]
            err = real[0] if real else failed[0].exception()
            assert err is not None
            raise err
        return [f.result() for f in futs]
    except BaseException:
        cancel.set()
        for f in futs:
            f.cancel()
        raise
    finally:
        pool.shutdown(wait=True)
