"""The ``local`` provider: the offline animatic renderer, run in a pool of worker processes.

It speaks the same submit/poll/result/fetch interface as the remote providers, so the
executor treats it like any other backend; it is free, so nothing is journaled.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from fractions import Fraction
from pathlib import Path
from typing import Any, ClassVar

from aivpbuild.keys import canonical_json
from aivpbuild.media import RENDERER_VERSION
from aivpbuild.providers.base import (
    Completed,
    Failed,
    GenerationRequest,
    JobHandle,
    JobResult,
    JobStatus,
    Provider,
    Running,
)


def _render(payload: dict[str, Any], out: str) -> tuple[int, tuple[str, ...]]:
    """Worker entry point: render one clip (runs in a child process)."""
    from aivpbuild.media.render import RenderSpec, render_clip

    spec = RenderSpec(
        clip_id=payload["clip_id"], prompt=payload["prompt"], camera=payload["camera"],
        duration=payload["duration"], fps=Fraction(payload["fps"]), width=payload["width"],
        height=payload["height"],
        image=Path(payload["image"]) if payload["image"] else None,
        end_image=Path(payload["end_image"]) if payload["end_image"] else None,
        audio=payload["audio"], dialogue=payload["dialogue"], seed=payload["seed"],
    )
    report = render_clip(spec, Path(out))
    return report.frames, tuple(report.notes)


class LocalProvider(Provider):
    name: ClassVar[str] = "local"
    version: ClassVar[str] = RENDERER_VERSION
    paid: ClassVar[bool] = False
    default_concurrency: ClassVar[int] = os.cpu_count() or 2

    def __init__(self, *, scratch: Path, jobs: int = 2) -> None:
        self.scratch = scratch
        self.jobs = max(1, jobs)
        self._pool: Executor | None = None
        self._futures: dict[str, asyncio.Future[tuple[int, tuple[str, ...]]]] = {}

    def _executor(self) -> Executor:
        if self._pool is None:
            if self.jobs == 1:  # no process start-up cost for a single worker
                self._pool = ThreadPoolExecutor(max_workers=1)
            else:
                import multiprocessing

                self._pool = ProcessPoolExecutor(
                    max_workers=self.jobs, mp_context=multiprocessing.get_context("spawn")
                )
        return self._pool

    def build_input(self, request: GenerationRequest, uploaded: Mapping[Path, str]) -> dict[str, Any]:
        def file(path: Path | None) -> str | None:
            return uploaded.get(path, str(path)) if path is not None else None

        seed = request.seed
        if seed is None:  # deterministic per clip, so the same input gives the same bytes
            seed = int(hashlib.sha256(request.target.encode()).hexdigest()[:8], 16)
        return {
            "clip_id": request.target, "prompt": " ".join(request.prompt.split()),
            "camera": request.camera, "duration": request.duration, "fps": str(request.fps),
            "width": request.width, "height": request.height, "image": file(request.image),
            "end_image": file(request.end_image), "audio": bool(request.audio),
            "dialogue": request.dialogue, "seed": seed,
        }

    async def submit(self, endpoint: str, payload: Mapping[str, Any]) -> JobHandle:
        self.scratch.mkdir(parents=True, exist_ok=True)
        request_id = "local-" + hashlib.sha256(canonical_json(dict(payload)).encode()).hexdigest()[:16]
        out = self.scratch / f"{request_id}-{uuid.uuid4().hex[:8]}.mp4"
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._executor(), _render, dict(payload), str(out))
        key = f"{request_id}:{out.name}"
        self._futures[key] = future
        return JobHandle(provider=self.name, request_id=request_id, endpoint=endpoint,
                         urls={"file": str(out), "job": key, "seed": str(payload["seed"])})

    async def poll(self, handle: JobHandle) -> JobStatus:
        future = self._futures[handle.urls["job"]]
        if not future.done():
            return Running()
        error = future.exception()
        return Failed(f"local render failed: {error}") if error else Completed()

    async def wait(
        self, handle: JobHandle, on_status: Callable[[JobStatus], None] | None = None
    ) -> Completed | Failed:
        future = self._futures[handle.urls["job"]]
        try:
            await future
        except Exception as exc:  # the renderer's own failure: report it as the job's
            return Failed(f"local render failed: {type(exc).__name__}: {exc}")
        return Completed()

    async def result(self, handle: JobHandle) -> JobResult:
        future = self._futures.pop(handle.urls["job"])
        frames, notes = future.result()
        return JobResult(
            video_url=handle.urls["file"], seed=int(handle.urls["seed"]), cost_usd=0.0,
            metadata={"frames": frames, "notes": list(notes)},
        )

    async def fetch(self, result: JobResult, dest: Path) -> None:
        os.replace(result.video_url, dest)

    async def aclose(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
