"""The manifest's ``review:`` section: thresholds of the technical clip review, per provider.

Kept apart from :mod:`aivpbuild.media.review` so loading a manifest never imports numpy or PyAV.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

ProviderName = Literal["local", "fal", "replicate", "comfyui"]


class ReviewThresholds(BaseModel):
    """Limits of the technical review. Defaults suit generative models; the ``local`` renderer
    gets tighter built-in values unless the manifest sets a field."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    codec: str | None = Field("h264", description="Expected video codec (ffmpeg name); null: any.")
    size_tolerance: float = Field(
        0.05, ge=0, le=1, description="Relative difference allowed in width and height (local: 0)."
    )
    aspect_tolerance: float = Field(
        0.02, ge=0, le=1, description="Relative difference allowed in display aspect ratio."
    )
    fps_tolerance: float | None = Field(
        None, ge=0,
        description="Frames per second the rate may differ by; null: report only (generative "
        "models pick their own rate; local: 0.01).",
    )
    duration_tolerance_frames: float = Field(
        2.0, ge=0, description="Frames the duration may differ from the request by (local: 1)."
    )
    audio_silence_dbfs: float = Field(
        -50.0, le=0, description="A clip with dialogue whose audio RMS is below this is silent."
    )
    black_luma: float = Field(
        0.10, ge=0, le=1, description="Pixels darker than this luma (0 black, 1 white) are dark."
    )
    black_pixel_ratio: float = Field(
        0.98, gt=0, le=1, description="A frame with at least this share of dark pixels is black."
    )
    blank_std: float = Field(
        0.01, ge=0, description="A frame whose luma standard deviation is below this is blank."
    )
    black_max_seconds: float = Field(
        0.0, ge=0, description="Black or blank frames allowed in a clip, in seconds."
    )
    freeze_epsilon: float = Field(
        0.004, ge=0,
        description="Mean luma difference from the start of a stretch below which frames are "
        "the same picture (local: 0.002).",
    )
    freeze_max_seconds: float = Field(
        1.0, ge=0, description="Longest still stretch allowed when the camera moves."
    )
    freeze_edge_fraction: float = Field(
        0.0, ge=0, le=0.5,
        description="Share of the duration a moving camera may also hold still at the start or "
        "end of the clip, easing in or out (local: 0.25; its moves are eased).",
    )
    static_freeze_max_seconds: float | None = Field(
        None, ge=0,
        description="Longest still stretch for a static/locked camera or a slate; null: no limit.",
    )
    cut_min_diff: float = Field(
        0.08, ge=0, description="Mean luma difference a hard cut between two frames must reach."
    )
    cut_min_hist_distance: float = Field(
        0.1, ge=0, le=1,
        description="Luma-histogram distance (1 - overlap) that also marks a hard cut.",
    )
    cut_ratio: float = Field(
        4.0, ge=1, description="A cut's difference must be this many times its neighbours'."
    )
    keyframe_min_overlap: float = Field(
        0.55, ge=0, le=1,
        description="I2V: colour-histogram overlap of the first frame with the keyframe "
        "(same scene; local: 0.75).",
    )
    keyframe_min_ssim: float = Field(
        0.5, ge=-1, le=1,
        description="I2V: luma SSIM of the first frame against the keyframe, both 64 pixels "
        "wide (framing; local: 0.85).",
    )
    continuity_min_overlap: float = Field(
        0.5, ge=0, le=1,
        description="Colour-histogram overlap of one clip's last frame with the next's first.",
    )


_THRESHOLD_FIELDS = tuple(ReviewThresholds.model_fields)

#: Built-in values for the exact offline renderer, used where the manifest does not set a field.
_LOCAL: dict[str, Any] = {
    "size_tolerance": 0.0,
    "aspect_tolerance": 0.005,
    "fps_tolerance": 0.01,
    "duration_tolerance_frames": 1.0,
    "freeze_epsilon": 0.002,
    "freeze_edge_fraction": 0.25,
    "keyframe_min_overlap": 0.75,
    "keyframe_min_ssim": 0.85,
}


class ResolvedThresholds(ReviewThresholds):
    """The thresholds one clip is reviewed with: defaults, the provider's built-in values, the
    manifest's ``review:`` fields and its ``review.providers.<name>`` fields, in that order."""

    provider: str = Field("", description="The provider these thresholds were resolved for.")


class ReviewSettings(ReviewThresholds):
    """The manifest's ``review:`` section: thresholds, and per-provider overrides."""

    providers: dict[ProviderName, ReviewThresholds] = Field(
        default_factory=dict,
        description="Per-provider thresholds, e.g. {local: {freeze_max_seconds: 0.5}}; only "
        "the fields given override the section's values.",
    )

    def for_provider(self, provider: str) -> ResolvedThresholds:
        """Resolve the thresholds for clips made by ``provider``."""
        values: dict[str, Any] = {name: getattr(self, name) for name in _THRESHOLD_FIELDS}
        if provider == "local":
            values.update({k: v for k, v in _LOCAL.items() if k not in self.model_fields_set})
        override = next((v for k, v in self.providers.items() if k == provider), None)
        if override is not None:
            values.update({k: getattr(override, k) for k in override.model_fields_set})
        return ResolvedThresholds(provider=provider, **values)


Thresholds = ResolvedThresholds | ReviewSettings | None
