"""The model catalogue: prices, refusals at load time, exact payloads, overrides, `models`."""

from __future__ import annotations

import json
import re
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from aivpbuild.catalog import (
    ClipParams,
    ModelOverride,
    ParamError,
    Resolution,
    estimate_usd,
    format_models_table,
    load_catalog,
    models_table,
    resolve,
)
from aivpbuild.errors import ManifestError
from aivpbuild.manifest import output_size
from tests.helpers import run_cli, write_project

GOLDEN = Path(__file__).parent / "catalog" / "golden_payloads.json"
PROMPT = "A courier in a yellow raincoat."
SEEDANCE, SEEDANCE1 = "fal-ai/bytedance/seedance/v1.5/pro", "fal-ai/bytedance/seedance/v1/pro"
KLING, KLING25 = "fal-ai/kling-video/v2.6/pro", "fal-ai/kling-video/v2.5-turbo/pro"
VEO, SORA = "fal-ai/veo3.1", "fal-ai/sora-2/pro"
HAILUO_PRO, HAILUO = "fal-ai/minimax/hailuo-02/pro", "fal-ai/minimax/hailuo-02/standard"
FAMILIES = [SEEDANCE, SEEDANCE1, KLING, KLING25, VEO, SORA, HAILUO_PRO, HAILUO]
#: A setting every family accepts: (resolution, duration).
VALID = {SEEDANCE: ("720p", 5), SEEDANCE1: ("1080p", 5), KLING: ("1080p", 10),
         KLING25: ("1080p", 5), VEO: ("1080p", 8), SORA: ("720p", 8),
         HAILUO_PRO: ("1080p", 6), HAILUO: ("768p", 10)}


def clip(model: str, *, resolution: str = "720p", duration: float = 5, audio: bool | None = None,
         image: bool = False, end: bool = False, mode: str = "auto", aspect: str = "16:9",
         params: dict[str, Any] | None = None, provider: str = "fal", seed: int | None = 7,
         fps: Fraction = Fraction(24), camera_fixed: bool | None = None,
         negative: str | None = None) -> ClipParams:
    w, h = output_size(resolution, aspect)
    return ClipParams("shot-01", provider, model, mode, PROMPT, duration,  # type: ignore[arg-type]
                      resolution, aspect, w, h, fps, audio, seed, camera_fixed, negative,
                      image, end, params or {})


def valid(model: str, **kwargs: Any) -> ClipParams:
    resolution, duration = VALID[model]
    return clip(model, **{"resolution": resolution, "duration": duration, **kwargs})


def refused(c: ClipParams, catalog: Any = None) -> ParamError:
    with pytest.raises(ParamError) as err:
        resolve(catalog or load_catalog(), c)
    assert err.value.clip == "shot-01"
    assert str(err.value).startswith(f"clips.shot-01.{err.value.field}: ")
    return err.value


# ----------------------------------------------------------------------------- pricing
@pytest.mark.parametrize(("model", "resolution", "duration", "audio", "image", "end", "usd"), [
    (SEEDANCE, "720p", 5, True, False, False, 0.26),      # the published example
    (SEEDANCE, "720p", 5, False, False, False, 0.13),
    (SEEDANCE, "1080p", 10, False, False, False, 0.58),   # 1920x1080x24x10/1024 tokens x $1.2/M
    (SEEDANCE, "480p", 12, True, True, False, 0.28),      # 854x480
    (SEEDANCE1, "1080p", 5, None, False, False, 0.61),    # published: "roughly $0.62"
    (SEEDANCE1, "480p", 2, None, True, False, 0.05),     # 854x480
    (KLING, "1080p", 10, True, True, False, 1.40),        # the published example
    (KLING, "1080p", 5, False, False, False, 0.35),
    (KLING, "1080p", 5, None, False, False, 0.70),        # audio on by default
    (KLING25, "1080p", 10, None, True, False, 0.70),
    (KLING25, "1080p", 5, None, False, False, 0.35),
    (VEO, "1080p", 8, True, False, False, 3.20),          # the published example
    (VEO, "720p", 8, False, False, False, 1.60),
    (VEO, "4k", 4, True, False, False, 2.40),
    (VEO, "1080p", 8, True, True, False, 1.20),           # fast image-to-video, $0.15/s
    (VEO, "4k", 6, False, True, False, 1.80),             # fast at 4k, $0.30/s
    (VEO, "1080p", 8, True, True, True, 3.20),            # first+last frame: full Veo 3.1
    (SORA, "720p", 8, None, False, False, 2.40),
    (SORA, "1080p", 12, None, True, False, 6.00),
    (SORA, "720p", 25, False, False, False, 7.50),        # always billed with audio
    (HAILUO_PRO, "1080p", 6, None, False, False, 0.48),
    (HAILUO_PRO, "1080p", 6, None, True, False, 0.48),
    (HAILUO, "768p", 6, None, True, False, 0.27),         # published: "$0.27/video"
    (HAILUO, "768p", 10, None, False, False, 0.45),
    (HAILUO, "512p", 6, None, True, False, 0.10),
])
def test_estimates_match_the_published_prices(model: str, resolution: str, duration: float,
                                              audio: bool | None, image: bool, end: bool,
                                              usd: float) -> None:
    result = resolve(load_catalog(), clip(model, resolution=resolution, duration=duration,
                                          audio=audio, image=image, end=end))
    assert result.estimate_usd == pytest.approx(usd, abs=0.005)


def test_seedance_tokens_follow_the_formula_at_the_models_frame_rate() -> None:
    tokens = 1280 * 720 * 24 * 5 / 1024
    for fps in (Fraction(24), Fraction(12), Fraction(30000, 1001)):  # the model renders 24 fps
        result = resolve(load_catalog(), clip("seedance-1.5-pro", audio=True, fps=fps))
        assert result.estimate_usd == pytest.approx(round(tokens * 2.4 / 1e6, 4))
    vertical = resolve(load_catalog(), clip("seedance-1.5-pro", audio=False, aspect="9:16"))
    assert vertical.estimate_usd == pytest.approx(round(tokens * 1.2 / 1e6, 4))


def test_estimate_usd_directly_and_unknown_prices() -> None:
    veo = load_catalog().family("veo")
    kwargs: dict[str, Any] = {"width": 1920, "height": 1080, "fps": Fraction(24), "duration": 8}
    assert estimate_usd(veo, mode="t2v", resolution="1080p", audio=True, **kwargs) == 3.2
    assert estimate_usd(veo, mode="i2v", resolution="1080p", audio=True, **kwargs) == 1.2
    assert estimate_usd(veo, mode="i2v", resolution="1080p", audio=True, end_image=True,
                        **kwargs) == 3.2
    assert estimate_usd(veo, mode="t2v", resolution="480p", audio=True, **kwargs) is None


# ----------------------------------------------------------------------------- refusals
def test_the_documented_message_names_clip_field_accepted_values_and_nearest() -> None:
    err = refused(clip(KLING, resolution="1080p", duration=7))
    assert err.field == "duration"
    assert err.message == f"{KLING} accepts 5 or 10 seconds, not 7 (nearest: 5)"
    assert str(err).splitlines()[0] == f"clips.shot-01.duration: {err.message}"


@pytest.mark.parametrize(("c", "field", "fragments"), [
    (clip(KLING, resolution="1080p", duration=8), "duration", ["not 8 (nearest: 10)"]),
    (clip(SEEDANCE, resolution="1080p", image=True), "resolution",
     [f"{SEEDANCE} I2V accepts 480p or 720p, not 1080p (nearest: 720p)"]),
    (clip(SEEDANCE, duration=3), "duration", ["accepts 4 to 12 whole seconds, not 3 (nearest: 4)"]),
    (clip(SEEDANCE, duration=5.5), "duration", ["not 5.5 (nearest: 5)"]),
    (clip(SEEDANCE, duration=0), "duration", ["above 0"]),
    (clip(HAILUO, resolution="512p", duration=6), "resolution",
     [f"{HAILUO} T2V accepts 768p, not 512p (nearest: 768p)"]),
    (clip(HAILUO, resolution="1080p", duration=6, image=True), "resolution",
     ["accepts 512p or 768p, not 1080p (nearest: 768p)"]),
    (clip(f"{KLING}/image-to-video", resolution="1080p"), "image",
     [f"{KLING}/image-to-video needs a first keyframe"]),
    (clip(SEEDANCE, mode="i2v"), "image", ["mode: i2v needs a first keyframe"]),
    (clip(f"{KLING}/image-to-video", resolution="1080p", image=True, mode="t2v"), "mode",
     ["is the I2V endpoint, but the clip has mode: t2v"]),
    (clip(f"{VEO}/first-last-frame-to-video", resolution="1080p", duration=8, image=True),
     "end_image", ["needs a last keyframe"]),
    (clip(f"{KLING}/motion-control", resolution="1080p"), "model", ["video-to-video endpoint"]),
    (clip("fal-ai/bytedance/seedanse/v1.5/pro"), "model",
     [f"unknown model 'fal-ai/bytedance/seedanse/v1.5/pro' (did you mean '{SEEDANCE}'?)"]),
    (clip("kling-2.6-por", resolution="1080p"), "model", ["did you mean 'kling-2.6-pro'?"]),
    (clip(KLING, resolution="1080p", params={"cfg_scale": "high"}), "params",
     ["params.cfg_scale must be a number", "not str 'high'"]),
    (clip(KLING, resolution="1080p", params={"cfg_scale": True}), "params", ["not bool True"]),
    (clip(KLING, resolution="1080p", params={"cfg_scal": 0.5}), "params",
     ["takes no input 'cfg_scal'", "did you mean 'cfg_scale'"]),
    (clip(KLING, resolution="1080p", image=True, params={"cfg_scale": 0.5}), "params",
     [f"{KLING} I2V takes no input 'cfg_scale'"]),
    (clip(SEEDANCE, params={"duration": 8}), "params", ["use the clip's own fields"]),
    (clip(VEO, resolution="1080p", duration=8, params={"safety_tolerance": 3}), "params",
     ["params.safety_tolerance for fal-ai/veo3.1 is one of '1', '2'", "not 3"]),
    (clip(SORA, aspect="1:1", duration=8), "aspect_ratio",
     ["accepts 16:9 or 9:16, not 1:1 (nearest: 16:9)"]),
    (clip(SEEDANCE, aspect="12:5"), "aspect_ratio", ["not 12:5 (nearest: 21:9)"]),
    (clip(VEO, provider="replicate"), "provider", ["served by 'fal', not 'replicate'"]),
    (clip("", provider="fal"), "model", ["needs a model"]),
])
def test_impossible_clips_are_refused_with_the_field_named(c: ClipParams, field: str,
                                                            fragments: list[str]) -> None:
    err = refused(c)
    assert err.field == field, str(err)
    for fragment in fragments:
        assert fragment in str(err), str(err)


@pytest.mark.parametrize("model", [f for f in FAMILIES if f != VEO])
def test_4k_only_on_veo(model: str) -> None:
    err = refused(clip(model, resolution="4k", duration=VALID[model][1]))
    assert err.field == "resolution" and "not 4k (nearest: " in err.message
    assert resolve(load_catalog(), clip(VEO, resolution="4k", duration=8)).payload["resolution"] == "4k"
    assert resolve(load_catalog(), clip(VEO, resolution="2160p", duration=8)).payload["resolution"] == "4k"


@pytest.mark.parametrize("model", [f for f in FAMILIES if f != SORA])
def test_25_seconds_only_on_sora(model: str) -> None:
    err = refused(clip(model, resolution=VALID[model][0], duration=25))
    assert err.field == "duration" and "not 25 (nearest: " in err.message
    assert resolve(load_catalog(), clip(SORA, duration=25)).payload["duration"] == 25


def test_a_size_given_as_wxh_counts_as_the_named_resolution() -> None:
    result = resolve(load_catalog(), clip(SEEDANCE, resolution="1280x720", audio=True))
    assert result.payload["resolution"] == "720p" and result.estimate_usd == pytest.approx(0.2592)
    err = refused(clip(SEEDANCE, resolution="1000x562"))
    assert err.field == "resolution" and "(nearest: 480p)" in err.message


# ----------------------------------------------------------------------------- payloads
def resolved_json(result: Resolution) -> dict[str, Any]:
    return {"endpoint": result.endpoint, "mode": result.mode, "payload": result.payload,
            "file_fields": result.file_fields, "audio": result.audio,
            "estimate_usd": result.estimate_usd}


def golden_cases() -> dict[str, ClipParams]:
    cases = {}
    for family in FAMILIES:
        cases[f"{family} t2v"] = valid(family)
        cases[f"{family} i2v"] = valid(family, image=True)
    cases.update({
        "veo first+last frame": valid(VEO, image=True, end=True, negative="blur", audio=False),
        "seedance start+end frame, camera fixed": valid(SEEDANCE, image=True, end=True,
                                                        camera_fixed=True, audio=False),
        "kling 2.6 start+end frame": valid(KLING, image=True, end=True, negative="text"),
        "kling 2.5 tail frame, cfg": valid(KLING25, image=True, end=True, params={"cfg_scale": 0.7}),
        "hailuo 512p image-to-video": clip(HAILUO, resolution="512p", duration=6, image=True,
                                           params={"prompt_optimizer": False}),
        "sora vertical 1080p": clip(SORA, resolution="1080p", aspect="9:16", duration=12),
    })
    return cases


def test_every_family_builds_exactly_the_expected_payloads() -> None:
    """Golden results, checked by hand against each endpoint's published input schema."""
    golden = json.loads(GOLDEN.read_text("utf-8"))
    catalog = load_catalog()
    assert {f.id for f in catalog.families()} == set(FAMILIES)
    got = {name: resolved_json(resolve(catalog, c)) for name, c in golden_cases().items()}
    assert got.keys() == golden.keys()
    for name in golden:
        assert got[name] == golden[name], name


def test_duration_and_resolution_types_are_the_apis() -> None:
    catalog = load_catalog()
    payload = {f: resolve(catalog, valid(f, image=True)).payload for f in FAMILIES}
    assert payload[SEEDANCE]["duration"] == "5" and payload[KLING]["duration"] == "10"
    assert payload[VEO]["duration"] == "8s" and payload[SORA]["duration"] == 8
    assert payload[HAILUO]["duration"] == "10" and payload[HAILUO]["resolution"] == "768P"
    assert "duration" not in payload[HAILUO_PRO] and "resolution" not in payload[KLING]
    files = {f: resolve(catalog, valid(f, image=True)).file_fields for f in FAMILIES}
    assert files[KLING] == {"start_image_url": "image"} and files[HAILUO] == {"image_url": "image"}


def test_mode_rule_notices_and_first_last_frame_endpoint() -> None:
    catalog = load_catalog()
    t2v = resolve(catalog, clip("seedance-1.5-pro"))
    assert t2v.mode == "t2v" and t2v.notices == ("shot-01: no keyframe, using text-to-video",)
    i2v = resolve(catalog, clip("seedance-1.5-pro", image=True))
    assert i2v.mode == "i2v" and i2v.notices == () and i2v.endpoint.endswith("/image-to-video")
    pinned = resolve(catalog, clip("seedance-1.5-pro", image=True, mode="t2v"))
    assert pinned.mode == "t2v" and pinned.file_fields == {} and pinned.notices == ()
    flf = resolve(catalog, clip("veo3.1", resolution="1080p", duration=8, image=True, end=True))
    assert flf.endpoint == "fal-ai/veo3.1/first-last-frame-to-video" and flf.mode == "i2v"
    fast = resolve(catalog, clip(f"{VEO}/fast/image-to-video", resolution="1080p", duration=8,
                                 image=True, end=True))
    assert fast.endpoint == f"{VEO}/fast/image-to-video" and fast.file_fields == {"image_url": "image"}
    assert fast.notices == ("shot-01: fal-ai/veo3.1 takes no last frame; end_image is not used",)


def test_aliases_and_endpoint_ids_name_their_family() -> None:
    catalog = load_catalog()
    for fam in catalog.families():
        for alias in fam.data.get("aliases", ()):
            assert catalog.family(alias) is fam
        for variant, endpoint in fam.endpoints.items():
            assert catalog.family(endpoint) is fam
            assert catalog.pinned(endpoint) == (None if endpoint == fam.id else variant)
    t2v = resolve(catalog, clip(f"{SEEDANCE}/text-to-video", image=True))  # the id fixes the mode
    assert t2v.mode == "t2v" and t2v.file_fields == {}
    assert resolve(catalog, clip("veo", resolution="1080p", duration=8)).endpoint == VEO


def test_audio_follows_the_clip_the_default_or_what_the_model_can_do() -> None:
    catalog = load_catalog()
    assert resolve(catalog, valid(KLING)).audio is True                     # default on
    off = resolve(catalog, valid(KLING, audio=False))
    assert off.audio is False and off.payload["generate_audio"] is False
    silent = resolve(catalog, valid(KLING25, audio=True, image=True))
    assert silent.audio is False and "generate_audio" not in silent.payload
    assert silent.notices == (f"shot-01: {KLING25} makes no audio; the clip will be silent",)
    sora = resolve(catalog, valid(SORA, audio=False, image=True))
    assert sora.audio is True and sora.notices == (f"shot-01: {SORA} always makes audio (and bills for it)",)


def test_local_provider_takes_anything_for_free() -> None:
    catalog = load_catalog()
    for model in ("animatic", SEEDANCE, ""):
        result = resolve(catalog, clip(model, provider="local", resolution="64x36", duration=0.7))
        assert (result.provider, result.family, result.endpoint) == ("local", "animatic", "local/animatic")
        assert (result.mode, result.payload, result.file_fields, result.estimate_usd) == ("t2v", {}, {}, 0.0)
    i2v = resolve(catalog, clip("animatic", provider="local", resolution="4k", duration=31, image=True))
    assert i2v.mode == "i2v" and i2v.estimate_usd == 0.0
    assert refused(clip("animatic", provider="local", mode="i2v")).field == "image"
    assert refused(clip("animatic", provider="local", duration=0)).field == "duration"


# ----------------------------------------------------------------------------- overrides
def test_manifest_models_add_replicate_and_comfyui_models() -> None:
    version = "a" * 64
    catalog = load_catalog({
        "wan": ModelOverride(provider="replicate", endpoint="acme/wan-video", durations=[5],
                             price_per_second=0.05),
        "wan-v": ModelOverride(provider="replicate", endpoint=f"acme/wan-video:{version}"),
        "wan-local": ModelOverride(provider="comfyui", workflow="workflows/wan.json",
                                   price_per_second=0),
    })
    wan = resolve(catalog, clip("wan", provider="replicate", image=True, end=True, negative="blur"))
    assert wan.endpoint == "acme/wan-video" and wan.estimate_usd == pytest.approx(0.25)
    assert wan.payload == {"prompt": PROMPT, "duration": 5, "resolution": "720p",
                           "aspect_ratio": "16:9", "seed": 7, "negative_prompt": "blur"}
    assert wan.file_fields == {"image": "image", "end_image": "end_image"}
    assert refused(clip("wan", provider="replicate", duration=4), catalog).field == "duration"
    assert resolve(catalog, clip("acme/wan-video", provider="replicate")).family == "wan"
    versioned = resolve(catalog, clip("wan-v", provider="replicate", params={"steps": 30}))
    assert versioned.endpoint == f"acme/wan-video:{version}" and versioned.payload["steps"] == 30
    assert versioned.estimate_usd is None
    comfy = resolve(catalog, clip("wan-local", provider="comfyui", resolution="320x180",
                                  duration=1.5, fps=Fraction(12), image=True))
    assert comfy.payload == {"prompt": PROMPT, "workflow": "workflows/wan.json", "duration": 1.5,
                             "width": 320, "height": 180, "fps": 12.0, "frames": 18, "seed": 7}
    assert comfy.file_fields == {"image": "image"} and comfy.estimate_usd == 0.0


def test_manifest_models_override_prices_and_limits() -> None:
    catalog = load_catalog({
        VEO: ModelOverride(price_per_second_audio={"1080p": 0.5}),
        SEEDANCE: ModelOverride(price_per_second=0.02, resolutions=["480p", "720p", "1080p"]),
    })
    veo = resolve(catalog, clip(VEO, resolution="1080p", duration=8, audio=True))
    assert veo.estimate_usd == pytest.approx(4.0)
    fast = resolve(catalog, clip(VEO, resolution="1080p", duration=8, audio=True, image=True))
    assert fast.estimate_usd == pytest.approx(4.0)  # the user's price holds for every mode
    silent = resolve(catalog, clip(VEO, resolution="1080p", duration=8, audio=False))
    assert silent.estimate_usd == pytest.approx(1.6)  # untouched
    seedance = resolve(catalog, clip(SEEDANCE, resolution="1080p", image=True, audio=False))
    assert seedance.estimate_usd == pytest.approx(0.10)  # per second now, and I2V 1080p allowed
    with_audio = resolve(catalog, clip(SEEDANCE, audio=True))
    assert with_audio.estimate_usd == pytest.approx(0.2592)  # the token price with audio stays
    builtin = resolve(load_catalog(), clip(VEO, resolution="1080p", duration=8, audio=True))
    assert builtin.estimate_usd == pytest.approx(3.2)  # the override never leaks


def test_new_models_declared_params_modes_and_aliases() -> None:
    catalog = load_catalog({
        "fal-ai/ltx-video": ModelOverride(aliases=["ltx"], durations=[5, 10],
                                          params={"steps": "integer"}, audio="optional",
                                          audio_default=False, price_per_second=0.02,
                                          price_per_second_audio=0.03),
        "acme/i2v-only": ModelOverride(provider="replicate", endpoints={"i2v": "acme/i2v-only"}),
    })
    ltx = resolve(catalog, clip("ltx", params={"steps": 20}))
    assert ltx.endpoint == "fal-ai/ltx-video" and ltx.audio is False
    assert ltx.payload == {"prompt": PROMPT, "duration": "5", "resolution": "720p",
                           "aspect_ratio": "16:9", "generate_audio": False, "seed": 7, "steps": 20}
    assert ltx.estimate_usd == pytest.approx(0.10)
    assert resolve(catalog, clip("ltx", audio=True)).estimate_usd == pytest.approx(0.15)
    assert refused(clip("ltx", params={"steps": 2.5}), catalog).field == "params"
    err = refused(clip("acme/i2v-only", provider="replicate"), catalog)
    assert err.field == "image" and "image-to-video only (it has I2V)" in err.message
    err = refused(clip("acme/i2v-only", provider="replicate", mode="t2v", image=True), catalog)
    assert err.field == "mode" and "has no T2V mode (it has I2V)" in err.message
    t2v_only = load_catalog({"me/t2v": ModelOverride(endpoints={"t2v": "me/t2v"})})
    err = refused(clip("me/t2v", image=True), t2v_only)
    assert err.field == "image" and "has no I2V mode (it has T2V)" in err.message


@pytest.mark.parametrize(("fields", "fragment"), [
    ({"endpoint": "a/b", "endpoints": {"t2v": "a/b"}}, "not both"),
    ({"provider": "replicate", "endpoint": "just-a-name"}, "not a Replicate model"),
    ({"provider": "fal", "workflow": "w.json"}, "provider: comfyui"),
    ({"price_per_second": {"720p": -1}}, "0 or more"),
    ({"durations": [0, 5]}, "positive"),
    ({"endpoit": "a/b"}, "Extra inputs are not permitted"),
])
def test_invalid_model_entries_are_refused(fields: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ValidationError, match=fragment):
        ModelOverride(**fields)


def test_invalid_model_sets_are_refused_at_load() -> None:
    with pytest.raises(ManifestError, match=r"models\.wan-local: a ComfyUI model needs `workflow:`"):
        load_catalog({"wan-local": ModelOverride(provider="comfyui")})
    with pytest.raises(ManifestError, match=re.escape("'kling' already names fal-ai/kling-video/v2.6/pro")):
        load_catalog({"me/x": ModelOverride(aliases=["kling"])})


# ----------------------------------------------------------------------------- data and table
def test_packaged_data_is_consistent_and_cached() -> None:
    catalog = load_catalog()
    assert load_catalog() is catalog and load_catalog({}) is catalog
    for fam in catalog.families():
        d = fam.data
        assert fam.modes == ["t2v", "i2v"], fam.id
        assert d["durations"] == sorted(d["durations"]) and all(isinstance(x, int) for x in d["durations"])
        assert d["default_resolution"] in d["resolutions"], fam.id
        for variant in ("t2v", "i2v"):
            assert set(fam.get("resolutions", variant)) <= set(d["resolutions"]), fam.id
            assert estimate_usd(fam, mode=variant, resolution=d["default_resolution"], width=1280,
                                height=720, fps=Fraction(24), duration=5,
                                audio=d["audio"] == "always") is not None, fam.id


def test_models_table_covers_every_family() -> None:
    rows = models_table(load_catalog())
    assert [r["family"] for r in rows] == FAMILIES
    json.dumps(rows)  # serialisable as is
    by = {r["family"]: r for r in rows}
    assert by[KLING]["durations"] == [5, 10] and by[KLING]["price_per_5s_audio"] == pytest.approx(0.70)
    assert by[KLING]["modes"] == ["t2v", "i2v", "v2v"] and by[VEO]["modes"] == ["t2v", "i2v", "flf"]
    assert by[SEEDANCE]["resolutions_by_mode"] == {"i2v": ["480p", "720p"]}
    assert (by[SEEDANCE]["price_per_5s"], by[SEEDANCE]["price_per_5s_audio"]) == (0.1296, 0.2592)
    assert (by[SORA]["audio"], by[SORA]["price_per_5s"], by[SORA]["price_per_5s_audio"]) == ("always", None, 1.5)
    assert (by[HAILUO]["audio"], by[HAILUO]["price_per_5s_audio"]) == ("no", None)
    assert by[HAILUO]["price_resolution"] == "768p" and by[HAILUO]["price_per_5s"] == pytest.approx(0.225)
    text = format_models_table(rows)
    lines = text.splitlines()
    assert len(lines) == len(FAMILIES) + 2 and lines[0].startswith("family")
    column = lines[0].index("provider")
    assert all(line[column:].startswith("fal ") for line in lines[1:-1])
    assert "4-12" in lines[1] and "I2V 480p,720p" in lines[1] and "$0.26" in lines[1]


def test_models_command() -> None:
    result = run_cli("models", "--json")
    assert result.code == 0 and len(json.loads(result.out)) == len(FAMILIES)
    text = run_cli("models").out
    assert "fal-ai/veo3.1" in text and "$2.00" in text


# ----------------------------------------------------------------------------- status and budget
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


def test_a_refused_clip_points_at_the_manifest(tmp_path: Path) -> None:
    root = remote_project(tmp_path / "p", clips={"hero": {"prompt": "x", "model": KLING, "duration": 7}})
    result = run_cli("status", "-C", str(root))
    assert result.code == 2
    assert f"{KLING} accepts 5 or 10 seconds, not 7 (nearest: 5)" in result.err


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
