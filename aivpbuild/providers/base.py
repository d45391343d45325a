"""The provider interface: how the executor asks any backend for a clip.

A provider turns a fully resolved :class:`GenerationRequest` into a video file through the
same asynchronous steps, whether the work happens on a remote GPU fleet or in a local process
pool::

    upload(path) -> url            for each local input file the request needs
    build_input(request, urls)     -> the provider's input JSON
    submit(endpoint, input)        -> JobHandle   (the paid step; journaled around it)
    poll(handle)                   -> Queued | Running | Completed | Failed
    result(handle)                 -> JobResult   (output URL, seed, reported cost)
    fetch(result, dest)            streams the output into a temp file
    cancel(handle)

Adapters never read the cache or compute keys, and the executor never knows a wire format.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Any, ClassVar, Literal

Mode = Literal["t2v", "i2v"]


@dataclass(frozen=True)
class GenerationRequest:
    """One clip to generate, with every default, profile and template already applied."""

    target: str
    provider: str
    model: str
    endpoint: str
    mode: Mode
    prompt: str
    duration: float
    resolution: str
    width: int
    height: int
    aspect_ratio: str
    fps: Fraction
    audio: bool
    seed: int | None = None
    camera: str | None = None
    camera_fixed: bool | None = None
    negative_prompt: str | None = None
    image: Path | None = None
    end_image: Path | None = None
    refs: tuple[Path, ...] = ()
    dialogue: str | None = None
    #: Extra provider parameters from the manifest (``params:``), passed through as given.
    params: Mapping[str, Any] = field(default_factory=dict)
    #: The provider input JSON built by the catalogue, without file fields.
    payload: Mapping[str, Any] = field(default_factory=dict)
    #: Input-JSON field name -> local file to upload into it (e.g. ``image_url``).
    file_inputs: Mapping[str, Path] = field(default_factory=dict)
    #: Whether the model takes a seed.
    accepts_seed: bool = True

    def with_seed(self, seed: int) -> GenerationRequest:
        """This request with another seed (a new take): in the input JSON too, when the model
        takes one."""
        payload = dict(self.payload)
        if self.accepts_seed:
            payload["seed"] = seed
        return replace(self, seed=seed, payload=payload)

    @property
    def frame_count(self) -> int:
        """Frames the output must hold: round(duration x fps)."""
        return round(Fraction(self.duration).limit_denominator(1000) * self.fps)

    def input_files(self) -> list[Path]:
        """Local files the provider must make available (upload) before submitting."""
        files = [p for p in (self.image, self.end_image) if p is not None]
        return files + list(self.refs)


@dataclass(frozen=True)
class JobHandle:
    """A submitted job; JSON-serialisable so the journal can resume it after a crash."""

    provider: str
    request_id: str
    endpoint: str
    urls: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "urls": dict(self.urls)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> JobHandle:
        return cls(
            provider=data["provider"],
            request_id=data["request_id"],
            endpoint=data["endpoint"],
            urls=dict(data.get("urls") or {}),
        )


@dataclass(frozen=True)
class Queued:
    position: int | None = None


@dataclass(frozen=True)
class Running:
    logs: tuple[str, ...] = ()


@dataclass(frozen=True)
class Completed:
    logs: tuple[str, ...] = ()


@dataclass(frozen=True)
class Failed:
    error: str
    error_type: str | None = None
    billed: bool = False


JobStatus = Queued | Running | Completed | Failed


@dataclass(frozen=True)
class JobResult:
    """Where the finished output is, plus what the provider reported about it."""

    video_url: str
    seed: int | None = None
    cost_usd: float | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)


class Provider(ABC):
    """A backend that makes clips. Subclasses register themselves in ``providers.registry``."""

    name: ClassVar[str]
    #: Output-affecting adapter version: part of every key this provider makes.
    version: ClassVar[str]
    #: Whether submitting costs money (paid jobs are journaled around the submit).
    paid: ClassVar[bool] = True
    #: Default number of jobs in flight at once for this provider.
    default_concurrency: ClassVar[int] = 4
    #: Seconds between polls of a running job.
    poll_interval: float = 2.0

    async def upload(self, path: Path) -> str:
        """Make a local input file reachable by the provider; returns its URL or name."""
        return str(path)

    @abstractmethod
    def build_input(self, request: GenerationRequest, uploaded: Mapping[Path, str]) -> dict[str, Any]:
        """The provider's input JSON for ``request`` (``uploaded`` maps input files to URLs)."""

    @abstractmethod
    async def submit(self, endpoint: str, payload: Mapping[str, Any]) -> JobHandle:
        """Start a job. For paid providers this is the step that costs money."""

    @abstractmethod
    async def poll(self, handle: JobHandle) -> JobStatus:
        """The job's current state."""

    @abstractmethod
    async def result(self, handle: JobHandle) -> JobResult:
        """The finished job's output location and metadata."""

    @abstractmethod
    async def fetch(self, result: JobResult, dest: Path) -> None:
        """Write the output video to ``dest`` (a temp path the executor verifies and moves)."""

    async def wait(
        self, handle: JobHandle, on_status: Callable[[JobStatus], None] | None = None
    ) -> Completed | Failed:
        """Poll until the job completes or fails: quickly at first (short jobs finish on time),
        backing off to ``poll_interval`` (long jobs cost a request every few seconds, not 10/s)."""
        import asyncio

        delay = min(0.25, self.poll_interval)
        while True:
            status = await self.poll(handle)
            if on_status is not None:
                on_status(status)
            if isinstance(status, Completed | Failed):
                return status
            await asyncio.sleep(delay)
            delay = min(self.poll_interval, delay * 1.5)

    async def cancel(self, handle: JobHandle) -> None:
        """Ask the provider to stop a job (best effort)."""

    async def aclose(self) -> None:
        """Release connections, pools and processes."""
