"""Deterministic crash injection for the crash-safety tests.

``AIVP_CRASH_AT=after-submit:3`` makes the process SIGKILL itself the third time it passes the
named point, so tests can kill a real build at an exact step (after the journal intent, after
the submit, after journaling the request id, while polling, mid-download, between download and
cache). Unset, every call is one environment lookup.
"""

from __future__ import annotations

import os
import signal

ENV = "AIVP_CRASH_AT"
_counts: dict[str, int] = {}


def crash_point(name: str) -> None:
    spec = os.environ.get(ENV)
    if not spec:
        return
    point, _, nth = spec.partition(":")
    if point != name:
        return
    _counts[name] = _counts.get(name, 0) + 1
    if _counts[name] >= int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
