"""The model catalogue: prices, refusals at load time, exact payloads, overrides, `models`."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from aivpbuild.catalog import ClipParams, ModelOverride, ParamError, load_catalog, models_table, resolve
from aivpbuild.manifest import output_size
from tests.helpers import run_cli, write_project

GOLDEN = Path(__file__).parent / "catalog" / "golden_payloads.json"


def clip(model: str, *, resolution: str = "720p", duration: float = 5, audio: bool | None = None,
         image: bool = False, end: bool = False, mode: str = "auto", aspect: str = "16:9",
         params: dict[str, Any] | None = None, provider: str = "fal") -> ClipParams:
    w, h = output_size(resolution, aspect)
    return ClipParams("shot-01", provider, model, mode, "A courier in a yellow raincoat.",  # type: ignore[arg-type]
                      duration, resolution, aspect, w, h, Fraction(24), audio, 7, None, None,
                      image, end, params or {})


@pytest.mark.parametrize(("model", "resolution", "duration", "audio", "image", "usd"), [
    ("fal-ai/bytedance/seedance/v1.5/pro", "720p", 5, True, False, 0.26),     # the seed's figure
    ("fal-ai/bytedance/seedance/v1.5/pro", "720p", 5, False, False, 0.13),
    ("fal-ai/bytedance/seedance/v1.5/pro", "1080p", 10, False, False, 0.58),
    ("fal-ai/bytedance/seedance/v1.5/pro", "480p", 12, True, True, 0.28),     # 854x480
    ("fal-ai/bytedance/seedance/v1/pro", "1080p", 5, None, False, 0.61),
    ("fal-ai/veo3.1", "1080p", 8, True, False, 3.20),                         # the seed's figure
    ("fal-ai/veo3.1", "720p", 8, False, False, 1.60),
    ("fal-ai/veo3.1", "1080p", 8, True, True, 1.20),                          # fast image-to-video
    ("fal-ai/kling-video/v2.6/pro", "1080p", 10, True, True, 1.40),           # the seed's figure
    ("fal-ai/kling-video/v2.6/pro", "1080p", 5, False, False, 0.35),
    ("fal-ai/kling-video/v2.5-turbo/pro", "1080p", 10, None, True, 0.70),
    ("fal-ai/sora-2/pro", "720p", 8, None, False, 2.40),
    ("fal-ai/sora-2/pro", "1080p", 12, None, True, 6.00),
    ("fal-ai/minimax/hailuo-02/pro", "1080p", 6, None, False, 0.48),
    ("fal-ai/minimax/hailuo-02/standard", "768p", 10, None, True, 0.45),
    ("fal-ai/minimax/hailuo-02/standard", "512p", 6, None, True, 0.10),
])
def test_estimates_match_the_published_prices(model: str, resolution: str, duration: float,
                                              audio: bool | None, image: bool, usd: float) -> None:
    result = resolve(load_catalog(), clip(model, resolution=resolution, duration=duration,
                                          audio=audio, image=image))
    assert result.estimate_usd == pytest.approx(usd, abs=0.005)


def test_seedance_tokens_follow_the_formula() -> None:
    result = resolve(load_catalog(), clip("seedance-1.5-pro", resolution="720p", duration=5, audio=True))
    assert result.estimate_usd == pytest.approx(1280 * 720 * 24 * 5 / 1024 * 2.4 / 1e6)


@pytest.mark.parametrize(("kwargs", "field", "fragments"), [
    ({"model": "fal-ai/kling-video/v2.6/pro", "resolution": "1080p", "duration": 7},
     "duration", ["accepts 5 or 10 seconds, not 7", "nearest valid: duration: 5"]),
    ({"model": "fal-ai/bytedance/seedance/v1.5/pro", "resolution": "1080p", "image": True},
     "resolution", ["I2V accepts 480p, 720p, not 1080p", "nearest valid: resolution: 720p"]),
    ({"model": "fal-ai/bytedance/seedance/v1.5/pro", "resolution": "4k"},
     "resolution", ["accepts 480p, 720p, 1080p, not 4k"]),
    ({"model": "fal-ai/veo3.1", "resolution": "1080p", "duration": 25},
     "duration", ["accepts 4, 6 or 8 seconds, not 25", "nearest valid: duration: 8"]),
    ({"model": "fal-ai/kling-video/v2.6/pro/image-to-video", "resolution": "1080p"},
     "image", ["needs a first keyframe"]),
    ({"model": "fal-ai/bytedance/seedance/v1.5/pro", "mode": "i2v"}, "image", ["needs a first keyframe"]),
    ({"model": "fal-ai/bytedance/seedanse/v1.5/pro"}, "model",
     ["unknown model", "did you mean 'fal-ai/bytedance/seedance/v1.5/pro'"]),
    ({"model": "fal-ai/kling-video/v2.6/pro", "resolution": "1080p", "params": {"cfg_scale": "high"}},
     "params", ["params.cfg_scale must be a number", "not str 'high'"]),
    ({"model": "fal-ai/kling-video/v2.6/pro", "resolution": "1080p", "params": {"cfg_scal": 0.5}},
     "params", ["takes no input 'cfg_scal'", "did you mean 'cfg_scale'"]),
    ({"model": "fal-ai/kling-video/v2.5-turbo/pro", "resolution": "1080p", "audio": True},
     "audio", ["makes no audio"]),
    ({"model": "fal-ai/sora-2/pro", "aspect": "1:1", "duration": 8}, "aspect_ratio", ["accepts aspect ratios 16:9, 9:16"]),
    ({"model": "fal-ai/veo3.1", "provider": "replicate"}, "provider", ["served by 'fal'"]),
])
def test_impossible_clips_are_refused_with_the_field_named(kwargs: dict[str, Any], field: str,
                                                            fragments: list[str]) -> None:
    with pytest.raises(ParamError) as err:
        resolve(load_catalog(), clip(**kwargs))
    assert err.value.field == field and err.value.clip == "shot-01"
    text = str(err.value)
    for fragment in fragments:
        assert fragment in text, text


def test_every_family_builds_exactly_the_expected_payloads() -> None:
    """Golden payloads, checked by hand against the providers' documented inputs."""
    golden = json.loads(GOLDEN.read_text())
    catalog = load_catalog()
    cases = {"fal-ai/bytedance/seedance/v1.5/pro": ("720p", 5, None), "fal-ai/bytedance/seedance/v1/pro": ("1080p", 5, None),
             "fal-ai/kling-video/v2.6/pro": ("1080p", 10, True), "fal-ai/kling-video/v2.5-turbo/pro": ("1080p", 5, None),
             "fal-ai/veo3.1": ("1080p", 8, True), "fal-ai/sora-2/pro": ("720p", 8, None),
             "fal-ai/minimax/hailuo-02/pro": ("1080p", 6, None), "fal-ai/minimax/hailuo-02/standard": ("768p", 10, None)}
    assert {f.id for f in catalog.families()} == set(cases)
    for family, (resolution, duration, audio) in cases.items():
        for mode, image in (("t2v", False), ("i2v", True)):
            result = resolve(catalog, clip(family, resolution=resolution, duration=duration, audio=audio, image=image))
            got = {"endpoint": result.endpoint, "payload": result.payload,
                   "file_fields": result.file_fields, "estimate_usd": result.estimate_usd}
            assert got == golden[f"{family} {mode}"], f"{family} {mode}"
    # duration types as the APIs want them
    assert golden["fal-ai/kling-video/v2.6/pro t2v"]["payload"]["duration"] == "10"
    assert golden["fal-ai/veo3.1 t2v"]["payload"]["duration"] == "8s"
    assert golden["fal-ai/sora-2/pro t2v"]["payload"]["duration"] == 8
    assert golden["fal-ai/minimax/hailuo-02/standard t2v"]["payload"]["resolution"] == "768P"


def test_mode_rule_and_first_last_frame_endpoint() -> None:
    catalog = load_catalog()
    t2v = resolve(catalog, clip("seedance-1.5-pro"))
    assert t2v.mode == "t2v" and t2v.notices == ("shot-01: no keyframe, using text-to-video",)
    assert resolve(catalog, clip("seedance-1.5-pro", image=True)).mode == "i2v"
    assert resolve(catalog, clip("seedance-1.5-pro", image=True, mode="t2v")).file_fields == {}
    flf = resolve(catalog, clip("veo3.1", resolution="1080p", duration=8, image=True, end=True))
    assert flf.endpoint == "fal-ai/veo3.1/first-last-frame-to-video"
    assert flf.file_fields == {"first_frame_url": "image", "last_frame_url": "end_image"}
    seedance = resolve(catalog, clip("seedance-1.5-pro", image=True, end=True))
    assert seedance.file_fields == {"image_url": "image", "end_image_url": "end_image"}


def test_manifest_models_add_and_override() -> None:
    catalog = load_catalog({
        "acme/wan-video": ModelOverride(provider="replicate", endpoint="acme/wan-video", durations=[5],
                                        price_per_second=0.05),
        "fal-ai/veo3.1": ModelOverride(price_per_second_audio={"1080p": 0.5}),
    })
    wan = resolve(catalog, clip("acme/wan-video", provider="replicate"))
    assert wan.endpoint == "acme/wan-video" and wan.estimate_usd == pytest.approx(0.25)
    assert wan.payload == {"prompt": "A courier in a yellow raincoat.", "duration": 5, "seed": 7,
                           "resolution": "720p", "aspect_ratio": "16:9"}
    veo = resolve(catalog, clip("fal-ai/veo3.1", resolution="1080p", duration=8, audio=True))
    assert veo.estimate_usd == pytest.approx(4.0)
    unpriced = load_catalog({"me/x": ModelOverride(provider="fal", endpoint="me/x")})
    assert resolve(unpriced, clip("me/x")).estimate_usd is None


def test_models_table_and_command() -> None:
    rows = models_table(load_catalog())
    assert len(rows) == 8
    kling = next(r for r in rows if r["family"] == "fal-ai/kling-video/v2.6/pro")
    assert kling["durations"] == [5, 10] and kling["price_per_5s_audio"] == pytest.approx(0.70)
    result = run_cli("models", "--json")
    assert result.code == 0 and len(json.loads(result.out)) == 8
    text = run_cli("models").out
    assert "fal-ai/veo3.1" in text and "$2.00" in text


def remote_project(root: Path, **extra: Any) -> Path:
    data = {"version": 1, "name": "t",
            "defaults": {"provider": "fal", "model": "fal-ai/veo3.1", "resolution": "1080p", "duration": 8},
            "clips": {"hero": {"prompt": "a hero shot"}, "wide": {"prompt": "a wide shot", "duration": 4}},
            **extra}
    return write_project(root, data)


def test_status_shows_each_estimate_and_the_total(tmp_path: Path) -> None:
    root = remote_project(tmp_path / "p")
    result = run_cli("status", "-C", str(root))
    assert "clip:hero  missing  $3.20" in result.out and "clip:wide  missing  $1.60" in result.out
    assert "estimated cost $4.80" in result.out
    data = json.loads(run_cli("status", "-C", str(root), "--json").out)
    assert data["estimate_usd"] == pytest.approx(4.8)


def test_over_budget_exits_3_before_any_provider_is_touched(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from aivpbuild.providers import registry

    def refuse(*_a: Any, **_k: Any) -> Any:
        raise AssertionError("a provider was created")

    monkeypatch.setattr(registry, "create_provider", refuse)
    root = remote_project(tmp_path / "p")
    result = run_cli("-C", str(root), "--max-cost", "4")
    assert result.code == 3
    assert "estimated cost $4.80 is over the budget of $4.00" in result.err
    assert "clip:hero $3.20; clip:wide $1.60" in result.err
    root2 = remote_project(tmp_path / "q", budget={"max_usd": 1})
    assert run_cli("-C", str(root2)).code == 3
    assert not (root / "video").exists() and not (root2 / "video").exists()
