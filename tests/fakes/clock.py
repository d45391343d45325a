"""Job timing for the fakes: a job's whole life is fixed when it is accepted, and its state is
computed from the wall clock on each poll (no thread per job, so hundreds cost nothing).

A job waits ``queue_seconds`` in the queue, then runs ``run_seconds``. With ``runners`` set,
at most that many jobs run at once (first come, first served), so a burst of submissions
really queues up, as it does on a provider's fleet.
"""

from __future__ import annotations

import heapq
import math
import time
from dataclasses import dataclass
from typing import Literal

Phase = Literal["queued", "running", "done"]


@dataclass
class Timeline:
    """When a job was accepted, started and finishes (``time.monotonic`` seconds)."""

    accepted: float
    starts: float
    ends: float
    wall_accepted: float  # time.time() at acceptance, for the timestamps APIs report

    def phase(self, now: float | None = None) -> Phase:
        now = time.monotonic() if now is None else now
        if now < self.starts:
            return "queued"
        return "running" if now < self.ends else "done"

    def progress(self, now: float | None = None) -> float:
        """How far the run is, 0..1."""
        now = time.monotonic() if now is None else now
        if self.ends <= self.starts:
            return 1.0 if now >= self.ends else 0.0
        return min(1.0, max(0.0, (now - self.starts) / (self.ends - self.starts)))

    def wall(self, moment: float) -> float:
        """A monotonic moment of this job as ``time.time()``."""
        return self.wall_accepted + (moment - self.accepted)

    def end_now(self, now: float | None = None) -> None:
        """Finish at once (a cancel or an interrupt)."""
        now = time.monotonic() if now is None else now
        self.ends = min(self.ends, now)
        self.starts = min(self.starts, self.ends)


class Scheduler:
    """Hands out :class:`Timeline` s; ``runners=None`` means every job starts on time."""

    def __init__(self, runners: int | None = None) -> None:
        self.runners = runners
        self._free: list[float] = []  # a heap of the times busy runners become free
        self._timelines: list[Timeline] = []

    def schedule(self, queue_seconds: float, run_seconds: float) -> Timeline:
        now = time.monotonic()
        starts = now + max(0.0, queue_seconds)
        if self.runners:
            if len(self._free) >= self.runners:
                starts = max(starts, heapq.heappop(self._free))
            heapq.heappush(self._free, starts + max(0.0, run_seconds))
        timeline = Timeline(now, starts, starts + max(0.0, run_seconds), time.time())
        self._timelines.append(timeline)
        return timeline

    def ahead_of(self, timeline: Timeline, now: float | None = None) -> int:
        """Jobs accepted earlier that are still waiting to start."""
        now = time.monotonic() if now is None else now
        self._timelines = [t for t in self._timelines if t.starts > now or t is timeline]
        return sum(1 for t in self._timelines if t.accepted < timeline.accepted and t.starts > now)


def queue_position(
    scheduler: Scheduler, timeline: Timeline, depth: int, now: float | None = None
) -> int:
    """A queue position that only goes down: our earlier jobs still waiting, plus ``depth``
    other customers' jobs that were ahead at submission and drain as the wait runs out."""
    now = time.monotonic() if now is None else now
    wait = timeline.starts - timeline.accepted
    left = 0.0 if wait <= 0 else max(0.0, timeline.starts - now) / wait
    return scheduler.ahead_of(timeline, now) + math.ceil(depth * left)
