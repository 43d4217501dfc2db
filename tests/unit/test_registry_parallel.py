"""Parallel transfers: the first failure cancels the others and is the error raised."""

from __future__ import annotations

import threading
import time

import pytest

from pallet.registry.parallel import Cancelled, run_all


def test_results_in_order() -> None:
    assert run_all(lambda x, c: x * 2, [1, 2, 3, 4], 3) == [2, 4, 6, 8]
    assert run_all(lambda x, c: x, [], 3) == []


def test_first_error_cancels_the_rest() -> None:
    started: list[int] = []

    def work(i: int, cancel: threading.Event) -> int:
        started.append(i)
        if i == 0:
            time.sleep(0.05)
            raise ValueError("boom")
        for _ in range(500):  # a long transfer that checks between chunks
            if cancel.is_set():
                raise Cancelled(str(i))
            time.sleep(0.01)
        return i

    t0 = time.monotonic()
    with pytest.raises(ValueError, match="boom"):
        run_all(work, list(range(6)), 2)
    assert time.monotonic() - t0 < 2
    assert len(started) < 6  # pending transfers never started
