"""The manifest's `review:` section: strict validation and provider-aware resolution."""

from __future__ import annotations

import pytest
import yaml
from pydantic import ValidationError

from aivpbuild.media.review import ResolvedThresholds, ReviewSettings, ReviewThresholds


def test_defaults_suit_models_and_local_is_tighter() -> None:
    settings = ReviewSettings()
    fal, local = settings.for_provider("fal"), settings.for_provider("local")
    assert isinstance(fal, ResolvedThresholds) and fal.provider == "fal"
    assert fal.codec == local.codec == "h264"
    assert fal.size_tolerance > local.size_tolerance == 0.0
    assert fal.fps_tolerance is None and local.fps_tolerance == pytest.approx(0.01)
    assert local.duration_tolerance_frames == 1.0 < fal.duration_tolerance_frames
    assert local.keyframe_min_ssim > fal.keyframe_min_ssim
    assert local.keyframe_min_overlap > fal.keyframe_min_overlap
    assert local.freeze_epsilon < fal.freeze_epsilon
    for remote in ("replicate", "comfyui"):
        assert settings.for_provider(remote).model_dump(exclude={"provider"}) == \
            fal.model_dump(exclude={"provider"})


def test_layering_default_then_builtin_then_section_then_provider() -> None:
    text = """
    freeze_max_seconds: 2
    keyframe_min_ssim: 0.6          # set explicitly: also applies to local
    providers:
      fal: {freeze_max_seconds: 3, codec: null}
      local: {black_max_seconds: 0.1}
    """
    settings = ReviewSettings.model_validate(yaml.safe_load(text))
    fal, replicate = settings.for_provider("fal"), settings.for_provider("replicate")
    local = settings.for_provider("local")
    assert (fal.freeze_max_seconds, replicate.freeze_max_seconds) == (3, 2)
    assert fal.codec is None and replicate.codec == "h264"
    assert local.freeze_max_seconds == 2 and local.black_max_seconds == 0.1
    assert local.keyframe_min_ssim == 0.6  # the section wins over the built-in local value
    assert local.keyframe_min_overlap == 0.75  # not set: the built-in local value
    assert fal.black_max_seconds == 0.0


@pytest.mark.parametrize(("data", "field"), [
    ({"freeze_max_secs": 1}, "freeze_max_secs"),
    ({"providers": {"falai": {}}}, "falai"),
    ({"providers": {"fal": {"codecs": "h264"}}}, "codecs"),
    ({"black_luma": 2}, "black_luma"),
    ({"cut_ratio": 0.5}, "cut_ratio"),
    ({"freeze_edge_fraction": 0.8}, "freeze_edge_fraction"),
])
def test_mistakes_are_refused_naming_the_field(data: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as err:
        ReviewSettings.model_validate(data)
    assert field in str(err.value)


def test_every_field_is_described_for_the_schema() -> None:
    schema = ReviewSettings.model_json_schema()
    assert schema["additionalProperties"] is False
    for name, prop in schema["properties"].items():
        assert prop.get("description"), name
    assert set(ReviewThresholds.model_fields) < set(ReviewSettings.model_fields)


def test_settings_are_immutable() -> None:
    settings = ReviewSettings()
    with pytest.raises(ValidationError):
        settings.freeze_max_seconds = 3  # type: ignore[misc]
