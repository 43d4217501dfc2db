"""Progress of blob transfers: rich bars on a terminal, Docker's plain lines otherwise.

The registry code reports through :class:`Progress`; the CLI picks the
implementation (``rich`` is imported only when bars are drawn).
"""

from __future__ import annotations

import sys
import threading
from typing import Any, Protocol, TextIO


class Progress(Protocol):
    def status(self, key: str, text: str) -> None:
        """A state change of one item: ``Pulling fs layer``, ``Pull complete``..."""

    def start(self, key: str, total: int, text: str) -> None:
        """A transfer of ``total`` bytes begins."""

    def advance(self, key: str, n: int) -> None:
        """``n`` more bytes moved."""

    def close(self) -> None: ...


class NullProgress:
    def status(self, key: str, text: str) -> None:
        pass

    def start(self, key: str, total: int, text: str) -> None:
        pass

    def advance(self, key: str, n: int) -> None:
        pass

    def close(self) -> None:
        pass


class LineProgress:
    """``<id>: <status>`` lines, as Docker prints when its output is not a terminal."""

    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out or sys.stdout
        self._lock = threading.Lock()

    def status(self, key: str, text: str) -> None:
        with self._lock:
            self.out.write(f"{key}: {text}\n")
            self.out.flush()

    def start(self, key: str, total: int, text: str) -> None:
        pass  # Docker prints no per-byte progress without a terminal

    def advance(self, key: str, n: int) -> None:
        pass

    def close(self) -> None:
        pass


class RichProgress:
    """One bar per blob on a terminal."""

    def __init__(self, out: TextIO | None = None) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            TextColumn,
            TransferSpeedColumn,
        )
        from rich.progress import (
            Progress as _Progress,
        )

        self._p = _Progress(
            TextColumn("{task.fields[key]}:"),
            TextColumn("{task.description:<18}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            console=Console(file=out or sys.stdout),
            transient=False,
        )
        self._tasks: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._closed = False
        self._p.start()

    def _task(self, key: str, total: int | None = None) -> Any:
        with self._lock:
            t = self._tasks.get(key)
            if t is None:
                t = self._p.add_task("", key=key, total=total)
                self._tasks[key] = t
            return t

    def status(self, key: str, text: str) -> None:
        t = self._task(key)
        self._p.update(t, description=text)
        if text.endswith("complete") or text in ("Already exists", "Pushed", "Layer already exists",
                                                  "Mounted"):
            task = self._p.tasks[t] if isinstance(t, int) and t < len(self._p.tasks) else None
            if task is not None and task.total:
                self._p.update(t, completed=task.total)

    def start(self, key: str, total: int, text: str) -> None:
        t = self._task(key, total)
        self._p.update(t, total=total, description=text)

    def advance(self, key: str, n: int) -> None:
        self._p.advance(self._task(key), n)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._p.stop()


def for_terminal(quiet: bool, out: TextIO | None = None) -> Progress:
    out = out or sys.stdout
    if quiet:
        return NullProgress()
    if out.isatty():
        return RichProgress(out)
    return LineProgress(out)
