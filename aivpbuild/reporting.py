"""How a build talks while it runs: plain lines, JSON lines, or a rich display on a terminal.

The executor emits events ``report(kind, target, **info)``; a reporter turns them into output.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any, ClassVar, TextIO

from aivpbuild.secrets import redact


def _name(tid: str | None) -> str:
    return (tid or "").split(":", 1)[-1]


class PlainReporter:
    """One line per event that matters; for logs and CI."""

    VERBS: ClassVar[dict[str, str]] = {"restored": "restored from cache", "started": "making", "submitted": "submitted",
             "resumed": "resuming journaled job", "skipped": "skipped", "failed": "FAILED"}

    def __init__(self, stream: TextIO | None = None, *, verbose: bool = False) -> None:
        self.stream = stream or sys.stdout
        self.verbose = verbose
        self._last_queue: dict[str, Any] = {}

    def __call__(self, kind: str, tid: str | None, **info: Any) -> None:
        line = self.line(kind, tid, info)
        if line:
            print(redact(line), file=self.stream, flush=True)

    def line(self, kind: str, tid: str | None, info: dict[str, Any]) -> str | None:
        name = _name(tid)
        if kind == "notice":
            return f"note: {info['message']}"
        if kind == "done":
            return f"{info['action']} {name}"
        if kind == "started":
            return f"making {name} ({info.get('state')})"
        if kind == "failed":
            return f"FAILED {name}: {info['error']}"
        if kind == "skipped":
            return f"skipped {name}: {info['reason']}"
        if kind == "reviewed":
            failed = ", ".join(info.get("failed") or ())
            return f"reviewed {name}: " + ("passed" if info.get("passed") else f"FAILED ({failed})")
        if kind == "queued":
            if self._last_queue.get(name) == info.get("position"):
                return None
            self._last_queue[name] = info.get("position")
            return f"queued {name} (position {info.get('position')})"
        if kind == "running":
            return "\n".join(f"  {name}: {log}" for log in info.get("logs", [])) or None
        if kind == "interrupted":
            if info.get("again"):
                return "interrupted again: exiting now (journaled jobs resume on the next run)"
            if info.get("cancelling"):
                return "interrupted: cancelling submitted paid jobs (Ctrl-C again to exit at once)"
            return ("interrupted: no new jobs will start; paid jobs already submitted stay "
                    "journaled and the next run picks them up (Ctrl-C again to exit at once)")
        if kind in self.VERBS:
            extra = f" {info['request_id']}" if info.get("request_id") else ""
            return f"{self.VERBS[kind]} {name}{extra}"
        return None


class JsonReporter:
    """JSON lines: one object per event, for scripts."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout

    def __call__(self, kind: str, tid: str | None, **info: Any) -> None:
        record = {"event": kind, "target": tid, "time": round(time.time(), 3), **info}
        print(redact(json.dumps(record, default=str, ensure_ascii=False)), file=self.stream, flush=True)


class RichReporter(PlainReporter):
    """A live progress bar on a terminal, with the plain lines printed above it."""

    def __init__(self, total: int) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        super().__init__()
        self.console = Console(stderr=False)
        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), console=self.console, transient=True,
        )
        self.task = self.progress.add_task("building", total=total)
        self.progress.start()

    def __call__(self, kind: str, tid: str | None, **info: Any) -> None:
        line = self.line(kind, tid, info)
        if line:
            self.progress.console.print(redact(line), markup=False, highlight=False)
        if kind in ("done", "restored", "failed", "skipped"):
            self.progress.advance(self.task)
        if kind == "started":
            self.progress.update(self.task, description=f"making {_name(tid)}")

    def close(self) -> None:
        self.progress.stop()
