"""From a validated manifest to build targets: defaults, profile, templates, paths, catalogue.

Every clip becomes a :class:`ClipTarget` holding a fully resolved
:class:`~aivpbuild.providers.base.GenerationRequest` and the static part of its key material
(everything but file and upstream digests, which are read at build time). A keyframe taken
from another clip (``image: {clip: shot-01, frame: last}``) adds a :class:`FrameTarget`, and
``edit:`` adds the :class:`EditTarget` that assembles the film.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from fractions import Fraction
from pathlib import Path
from typing import Any

from aivpbuild.errors import AivpError, ManifestError
from aivpbuild.fsutil import is_within
from aivpbuild.keys import KEY_SCHEMA, key_of
from aivpbuild.manifest import Clip, ClipSettings, FrameRef, Manifest, locate, output_size
from aivpbuild.prompts import prompt_identity, render_prompt
from aivpbuild.providers.base import GenerationRequest
from aivpbuild.targets import (
    ClipTarget,
    EditTarget,
    FrameTarget,
    Plan,
    Target,
    clip_target_id,
    frame_target_id,
)

#: What a clip gets when neither the clip, the profile nor ``defaults`` says otherwise.
BUILTIN_DEFAULTS: dict[str, Any] = {
    "provider": "local", "mode": "auto", "duration": 5.0, "resolution": "720p",
    "aspect_ratio": "16:9", "fps": "24", "audio": None, "seed": None,
}
FRAMES_DIR = "video/frames"
CLIPS_DIR = "video/clips"
#: Versions of the frame extractor and the assembler: part of those targets' keys.
FRAME_VERSION = "1"
ASSEMBLER_VERSION = "1"


class Planner:
    """Resolves one manifest under one profile. Errors name the manifest position."""

    def __init__(self, manifest: Manifest, *, root: Path, source: Path, text: str,
                 profile: str | None) -> None:
        self.manifest = manifest
        self.root = root
        self.source = source
        self.text = text
        self.profile = profile
        self.frames: dict[str, FrameTarget] = {}
        self._catalog: Any = None
        #: every project file whose existence shaped the plan, and sheet files read (plan cache)
        self.paths_seen: dict[str, tuple[bool, bool]] = {}
        self.files_read: list[str] = []

    def error(self, loc: tuple[Any, ...], message: str, hint: str | None = None) -> ManifestError:
        line, col, _ = locate(self.text, loc)
        where = f"{self.source}:{line}:{col}" if line else str(self.source)
        return ManifestError(f"{where}: {'.'.join(map(str, loc))}: {message}", hint=hint)

    def plan(self) -> Plan:
        settings = self._settings()
        context = self._context()
        clips = [self._clip(cid, clip, settings, context) for cid, clip in self.manifest.clips.items()]
        targets: dict[str, Target] = {}
        for clip in clips:  # each derived frame right after its source clip: a natural order
            targets[clip.id] = clip
            targets.update((f.id, f) for f in self.frames.values() if f.clip_id == clip.clip_id)
        if self.manifest.edit is not None:
            edit = self.manifest.edit
            material = {"kind": "edit", "schema": KEY_SCHEMA, "assembler": ASSEMBLER_VERSION}
            targets["edit:final"] = EditTarget(
                id="edit:final", output=edit.output, upstream={t.clip_id: t.id for t in clips},
                material=material, static_key=key_of(material),
            )
        budget = self.manifest.budget
        return Plan(name=self.manifest.name, profile=self.profile, targets=targets,
                    budget=budget.max_usd, confirm_usd=budget.confirm_usd)

    # ------------------------------------------------------------------ pieces
    def _settings(self) -> dict[str, Any]:
        merged = dict(BUILTIN_DEFAULTS)
        merged.update(_set_fields(self.manifest.defaults))
        if self.profile is not None:
            if self.profile not in self.manifest.profiles:
                known = ", ".join(self.manifest.profiles) or "none defined"
                raise AivpError(
                    f"unknown profile {self.profile!r} (profiles in {self.source.name}: {known})",
                    hint="define it under `profiles:` or pick one of those",
                )
            merged.update(_set_fields(self.manifest.profiles[self.profile]))
        return merged

    def _context(self) -> dict[str, Any]:
        from aivpbuild.context import build_context

        return build_context(self.manifest.context, self.root, self.source, self.files_read)

    def _clip(self, clip_id: str, clip: Clip, base: dict[str, Any], context: Mapping[str, Any]) -> ClipTarget:
        values = {**base, **_set_fields(clip, ClipSettings.model_fields)}
        prompt = render_prompt(clip.prompt, context, clip_id=clip_id) if clip.prompt else ""
        notices: list[str] = []
        inputs: dict[str, str] = {}
        upstream: dict[str, str] = {}
        paths: dict[str, Path | None] = {"image": None, "end_image": None}
        missing: dict[str, str] = {}  # role -> keyframe file that does not exist yet
        for role in ("image", "end_image"):
            source = getattr(clip, role)
            if source is None:
                continue
            if isinstance(source, FrameRef):
                frame = self._frame(clip_id, role, source)
                upstream[role] = frame.id
                paths[role] = self.root / frame.output
            elif self._file(clip_id, role, source, required=values["mode"] == "i2v" and role == "image"):
                inputs[role] = source
                paths[role] = self.root / source
            else:
                missing[role] = source
        refs: list[Path] = []
        for i, ref in enumerate(clip.refs):
            if self._file(clip_id, "refs", ref, required=True, index=i):
                inputs[f"refs[{i}]"] = ref
                refs.append(self.root / ref)
        if paths["image"] is None and paths["end_image"] is not None:
            if "image" not in missing:
                notices.append(f"{clip_id}: end_image without image is ignored")
            paths["end_image"] = None
            inputs.pop("end_image", None)
            upstream.pop("end_image", None)

        width, height = output_size(values["resolution"], values["aspect_ratio"])
        fps = Fraction(values["fps"])
        resolution = self._resolve(clip_id, clip, values, prompt, width, height, fps, paths)
        if missing and values["mode"] != "t2v":
            notices.append(_missing_keyframes_notice(clip_id, missing))
        from aivpbuild.catalog import NO_KEYFRAME  # loaded by _resolve already

        notices.extend(n for n in resolution.notices  # said once per clip, just above
                       if not ("image" in missing and n.endswith(NO_KEYFRAME)))
        dialogue = clip.dialogue if isinstance(clip.dialogue, str) or clip.dialogue is None \
            else "\n".join(clip.dialogue)
        request = GenerationRequest(
            target=clip_id, provider=resolution.provider, model=resolution.family,
            endpoint=resolution.endpoint, mode=resolution.mode, prompt=prompt,
            duration=values["duration"], resolution=values["resolution"], width=width, height=height,
            aspect_ratio=values["aspect_ratio"], fps=fps, audio=resolution.audio, seed=values["seed"],
            camera=values.get("camera"), camera_fixed=values.get("camera_fixed"),
            negative_prompt=values.get("negative_prompt"),
            image=paths["image"] if resolution.mode == "i2v" else None,
            end_image=paths["end_image"] if resolution.mode == "i2v" else None,
            refs=tuple(refs), dialogue=dialogue, params=dict(values.get("params") or {}),
            payload=resolution.payload,
            file_inputs={name: p for name, role in resolution.file_fields.items()
                         if (p := paths.get(role)) is not None},
            accepts_seed=resolution.accepts_seed,
        )
        if resolution.mode == "t2v":  # keyframes are not inputs of a text-to-video clip
            for role in ("image", "end_image"):
                inputs.pop(role, None)
                upstream.pop(role, None)
        params = {
            "duration": request.duration, "width": width, "height": height,
            "aspect_ratio": request.aspect_ratio, "fps": str(fps), "audio": request.audio,
            "seed": request.seed, "camera": request.camera, "camera_fixed": request.camera_fixed,
            "negative_prompt": request.negative_prompt, "extra": request.params,
        }
        if resolution.provider == "local" and request.audio:
            params["dialogue"] = dialogue
            if dialogue:  # the speech engine shapes the audio track's bytes
                from aivpbuild.media.speech import engine_id

                params["speech"] = engine_id()
        from aivpbuild.providers.registry import adapter_version

        material = {
            "kind": "clip", "schema": KEY_SCHEMA, "provider": resolution.provider,
            "endpoint": resolution.endpoint, "mode": resolution.mode,
            "prompt": prompt_identity(prompt), "params": params,
            "adapter": adapter_version(resolution.provider),
        }
        return ClipTarget(
            id=clip_target_id(clip_id), clip_id=clip_id, output=f"{CLIPS_DIR}/{clip_id}.mp4",
            request=request, inputs=inputs, upstream=upstream, material=material,
            estimate_usd=resolution.estimate_usd, notices=tuple(notices), static_key=key_of(material),
            continuity=bool(clip.continuity),
        )

    def _resolve(self, clip_id: str, clip: Clip, values: dict[str, Any], prompt: str,
                 width: int, height: int, fps: Fraction, paths: dict[str, Path | None]) -> Any:
        from aivpbuild import catalog

        if self._catalog is None:
            self._catalog = catalog.load_catalog(getattr(self.manifest, "models", None) or None)
        params = catalog.ClipParams(
            clip_id=clip_id, provider=values["provider"],
            model=values.get("model") or ("animatic" if values["provider"] == "local" else ""),
            mode=values["mode"], prompt=prompt, duration=values["duration"],
            resolution=values["resolution"], aspect_ratio=values["aspect_ratio"],
            width=width, height=height, fps=fps, audio=values.get("audio"), seed=values.get("seed"),
            camera_fixed=values.get("camera_fixed"), negative_prompt=values.get("negative_prompt"),
            has_image=paths["image"] is not None, has_end_image=paths["end_image"] is not None,
            params=values.get("params") or {},
        )
        try:
            return catalog.resolve(self._catalog, params)
        except catalog.ParamError as exc:
            origin: tuple[str, ...] = ("clips", clip_id, exc.field)
            if exc.field not in clip.model_fields_set:
                origin = self._origin(exc.field) or origin
            raise self.error(origin, exc.message, exc.hint) from None

    def _origin(self, name: str) -> tuple[str, ...] | None:
        """Where a clip's inherited value was set: the profile, else ``defaults``."""
        if self.profile and name in self.manifest.profiles[self.profile].model_fields_set:
            return "profiles", self.profile, name
        if name in self.manifest.defaults.model_fields_set:
            return "defaults", name
        return None

    def _file(self, clip_id: str, role: str, rel: str, *, required: bool, index: int | None = None) -> bool:
        loc: tuple[Any, ...] = ("clips", clip_id, role) + ((index,) if index is not None else ())
        path = self.root / rel
        self.paths_seen[rel] = (path.exists(), path.is_symlink())
        if path.is_symlink() or path.exists():
            if not is_within(self.root, path):
                raise self.error(loc, f"{rel} leads outside the project (through a symlink)",
                                 "copy the file into the project instead of linking to it")
            if not path.is_file():
                raise self.error(loc, f"{rel} is not a file")
            return True
        if required:
            why = "mode: i2v needs its keyframe" if role == "image" else "the file is missing"
            fix = "set mode: auto to fall back to T2V" if role == "image" else "drop it from refs"
            raise self.error(loc, f"{rel} does not exist ({why})",
                             f"create the file, fix the path, or {fix}")
        return False

    def _frame(self, clip_id: str, role: str, ref: FrameRef) -> FrameTarget:
        if ref.clip not in self.manifest.clips:
            close = difflib.get_close_matches(ref.clip, list(self.manifest.clips), n=1)
            raise self.error(("clips", clip_id, role, "clip"), f"no clip named {ref.clip!r}",
                             f"did you mean {close[0]!r}?" if close else "use the id of a clip")
        target_id = frame_target_id(ref.clip, ref.frame)
        if target_id not in self.frames:
            self.frames[target_id] = FrameTarget(
                id=target_id, clip_id=ref.clip, which=ref.frame,
                output=f"{FRAMES_DIR}/{ref.clip}-{ref.frame}.png",
                upstream={"clip": clip_target_id(ref.clip)},
                material=(material := {"kind": "frame", "schema": KEY_SCHEMA, "which": ref.frame,
                                       "extractor": FRAME_VERSION}),
                static_key=key_of(material),
            )
        return self.frames[target_id]


def _missing_keyframes_notice(clip_id: str, missing: Mapping[str, str]) -> str:
    """One notice per clip for keyframe files that do not exist yet (the clip still builds)."""
    if "image" in missing:
        files = " and ".join(missing.values())
        return f"{clip_id}: {files} not there yet; generating text-to-video until it is"
    return f"{clip_id}: end keyframe {missing['end_image']} not there yet; using the first keyframe only"


def _set_fields(model: Any, allowed: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The fields a model instance explicitly sets (and that are not None)."""
    return {
        name: getattr(model, name)
        for name in model.model_fields_set
        if (allowed is None or name in allowed) and getattr(model, name) is not None
    }
