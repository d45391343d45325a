"""Build targets: what the planner produces and the executor makes (plain, picklable data).

A :class:`ClipTarget` holds a fully resolved request and the static part of its key material;
a :class:`FrameTarget` is a keyframe extracted from another clip's output; the
:class:`EditTarget` assembles every clip into the film.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aivpbuild.providers.base import GenerationRequest


@dataclass(frozen=True)
class ClipTarget:
    id: str
    clip_id: str
    output: str
    request: GenerationRequest
    inputs: dict[str, str]            # role -> project-relative source file
    upstream: dict[str, str]          # role -> target id whose output is an input
    material: dict[str, Any]          # static key material (no digests)
    estimate_usd: float | None = 0.0
    notices: tuple[str, ...] = ()
    kind: str = "clip"
    static_key: str = ""              # sha256 of ``material``: the key's precomputed half
    continuity: bool = False          # review the cut from the previous clip (not in the key)

    @property
    def deps(self) -> tuple[str, ...]:
        return tuple(self.upstream.values())


@dataclass(frozen=True)
class FrameTarget:
    id: str
    clip_id: str
    which: str
    output: str
    upstream: dict[str, str]
    material: dict[str, Any]
    kind: str = "frame"
    estimate_usd: float | None = 0.0
    notices: tuple[str, ...] = ()
    static_key: str = ""

    @property
    def deps(self) -> tuple[str, ...]:
        return tuple(self.upstream.values())


@dataclass(frozen=True)
class EditTarget:
    id: str
    output: str
    upstream: dict[str, str]          # clip id -> clip target id, in edit order
    material: dict[str, Any]
    inputs: dict[str, str] = field(default_factory=dict)
    kind: str = "edit"
    estimate_usd: float | None = 0.0
    notices: tuple[str, ...] = ()
    static_key: str = ""

    @property
    def deps(self) -> tuple[str, ...]:
        return tuple(self.upstream.values())


Target = ClipTarget | FrameTarget | EditTarget


@dataclass(frozen=True)
class Plan:
    """All targets of a project under one profile, in manifest order (clips, frames, edit)."""

    name: str
    profile: str | None
    targets: dict[str, Target]
    budget: float | None = None
    confirm_usd: float = 5.0

    def clips(self) -> list[ClipTarget]:
        return [t for t in self.targets.values() if isinstance(t, ClipTarget)]


def clip_target_id(clip_id: str) -> str:
    return f"clip:{clip_id}"


def frame_target_id(clip_id: str, which: str) -> str:
    return f"frame:{clip_id}@{which}"
