"""Provider settings (defaults, validation, environment overrides), key lookup order with a
temporary HOME and .env files, redaction, and that a key never reaches an error or a log."""

from __future__ import annotations

import logging
import os
import traceback
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from aivpbuild import secrets
from aivpbuild.errors import AivpError, ConfigError
from aivpbuild.providers.base import JobHandle, JobResult
from aivpbuild.providers.comfyui import ComfyUIProvider
from aivpbuild.providers.fal import FalProvider, request_urls
from aivpbuild.providers.http import RetryPolicy
from aivpbuild.providers.replicate import ReplicateProvider
from aivpbuild.providers.settings import (
    ENV_COMFYUI_SERVERS,
    ENV_FAL_QUEUE_URL,
    ENV_FAL_REST_URL,
    ENV_REPLICATE_BASE_URL,
    ComfyUISettings,
    FalSettings,
    ProvidersSettings,
    ReplicateSettings,
)
from tests.providers.helpers import Reply, Script, Sleeps, run


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A temporary HOME and no provider variables from the machine's environment."""
    home = tmp_path / "home"
    (home / ".aivp").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    for name in (
        *secrets.SECRET_NAMES,
        ENV_FAL_QUEUE_URL,
        ENV_FAL_REST_URL,
        ENV_REPLICATE_BASE_URL,
        ENV_COMFYUI_SERVERS,
    ):
        monkeypatch.delenv(name, raising=False)
    return home


# ------------------------------------------------------------------ settings
def test_production_defaults(home: Path) -> None:
    providers = ProvidersSettings()
    assert (
        providers.fal.queue_url == "https://queue.fal.run"
        and providers.fal.rest_url == "https://rest.fal.ai"
    )
    assert providers.replicate.base_url == "https://api.replicate.com/v1"
    assert providers.comfyui.servers == ["http://127.0.0.1:8188"]
    assert providers.fal.resolved() == providers.fal  # nothing in the environment
    for model in (FalSettings, ReplicateSettings, ComfyUISettings):
        assert all(field.description for field in model.model_fields.values()), model


def test_manifest_values_are_validated(home: Path) -> None:
    with pytest.raises(ValidationError, match="extra"):
        ProvidersSettings.model_validate({"fal": {"queue_ur1": "https://x"}})
    with pytest.raises(ValidationError, match="not an http"):
        FalSettings(queue_url="queue.fal.run")
    with pytest.raises(ValidationError):
        ComfyUISettings(servers=[])
    with pytest.raises(ValidationError):
        ReplicateSettings(concurrency=0)
    tuned = ComfyUISettings(servers=["http://a:1/", "http://a:1", "https://b"], poll_interval=0.5)
    assert tuned.servers == ["http://a:1", "https://b"] and tuned.poll_interval == 0.5


def test_environment_overrides_win(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_FAL_QUEUE_URL, "http://127.0.0.1:9/queue/")
    monkeypatch.setenv(ENV_FAL_REST_URL, "http://127.0.0.1:9/rest")
    monkeypatch.setenv(ENV_REPLICATE_BASE_URL, "http://127.0.0.1:9/v1")
    monkeypatch.setenv(ENV_COMFYUI_SERVERS, "http://127.0.0.1:1, http://127.0.0.1:2,")
    fal = FalSettings(queue_url="https://manifest.test").resolved()
    assert (fal.queue_url, fal.rest_url) == ("http://127.0.0.1:9/queue", "http://127.0.0.1:9/rest")
    assert ReplicateSettings().resolved().base_url == "http://127.0.0.1:9/v1"
    assert ComfyUISettings().resolved().servers == ["http://127.0.0.1:1", "http://127.0.0.1:2"]
    monkeypatch.setenv(ENV_COMFYUI_SERVERS, "127.0.0.1:8188")
    with pytest.raises(ConfigError, match=ENV_COMFYUI_SERVERS):
        ComfyUISettings().resolved()


def test_from_settings_applies_settings_and_env(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAL_KEY", "fal-from-env-123456")
    monkeypatch.setenv("REPLICATE_API_TOKEN", "r8_from_env_123456")
    monkeypatch.setenv(
        ENV_COMFYUI_SERVERS, "http://127.0.0.1:1,http://127.0.0.1:2,http://127.0.0.1:3"
    )
    fal = FalProvider.from_settings(FalSettings(concurrency=32, poll_interval=1.0), tmp_path)
    assert fal.default_concurrency == 32 and fal.poll_interval == 1.0
    assert ReplicateProvider.from_settings(None, tmp_path).default_concurrency == 8
    comfy = ComfyUIProvider.from_settings(None, tmp_path)
    assert comfy.default_concurrency == 3 and comfy.root == tmp_path


# ------------------------------------------------------------------ keys
def test_key_lookup_order(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = tmp_path / "proj"
    project.mkdir()
    (project / ".env").write_text("FAL_KEY=from-project-env\n")
    (home / ".env").write_text("OTHER=1\nFAL_KEY='from-home-env'\n")
    (home / ".aivp" / ".env").write_text("export FAL_KEY=from-aivp-env\n")
    monkeypatch.setenv("FAL_KEY", "from-environment")
    assert secrets.load_key("FAL_KEY", project) == "from-environment"
    monkeypatch.delenv("FAL_KEY")
    assert secrets.load_key("FAL_KEY", project) == "from-project-env"
    (project / ".env").write_text("# no key here\n")
    assert secrets.load_key("FAL_KEY", project) == "from-home-env"
    (home / ".env").unlink()
    assert secrets.load_key("FAL_KEY", project) == "from-aivp-env"
    (home / ".aivp" / ".env").unlink()
    assert secrets.load_key("FAL_KEY", project) is None
    assert "FAL_KEY" not in os.environ  # read, never exported (child processes never see it)


def test_a_missing_key_says_how_to_set_it(home: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as fal:
        FalProvider.from_settings(None, tmp_path)
    assert "FAL_KEY" in str(fal.value) and str(tmp_path / ".env") in str(fal.value)
    with pytest.raises(ConfigError) as rep:
        ReplicateProvider.from_settings(None, tmp_path)
    assert "REPLICATE_API_TOKEN" in str(rep.value) and "~/.aivp/.env" in str(rep.value)


def test_a_key_from_a_dotenv_file_is_used_but_not_exported(home: Path, tmp_path: Path) -> None:
    (home / ".aivp" / ".env").write_text("REPLICATE_API_TOKEN=r8_dotenv_abcdef\n")
    script = Script().on(
        "GET", "https://api.replicate.com/v1/predictions/p", Reply(200, {"status": "starting"})
    )
    rep = ReplicateProvider.from_settings(None, tmp_path, client=script.client())
    run(
        rep.poll(
            JobHandle(
                "replicate", "p", "a/b", {"get": "https://api.replicate.com/v1/predictions/p"}
            )
        )
    )
    assert script.requests[0].headers["authorization"] == "Bearer r8_dotenv_abcdef"
    assert "REPLICATE_API_TOKEN" not in os.environ


def test_redact_scrubs_loaded_and_environment_secrets(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".env").write_text("FAL_KEY=abc123-loaded-secret\n")
    secrets.load_key("FAL_KEY", tmp_path)
    monkeypatch.setenv("REPLICATE_API_TOKEN", "r8_environment_secret")
    text = "fal said abc123-loaded-secret; replicate said r8_environment_secret; keep abc"
    assert secrets.redact(text) == "fal said ***; replicate said ***; keep abc"


# ------------------------------------------------------------------ never in errors or logs
FAL_SECRET = "fal-SECRET-5e1f0c7a9b"
REP_SECRET = "r8_SECRET_77aa11bb22"


def collect(errors: list[str], coro: object) -> None:
    try:
        run(coro)  # type: ignore[arg-type]
    except AivpError as exc:
        errors.append(str(exc))
        errors.append(repr(exc))
        errors.append("".join(traceback.format_exception(exc)))
    else:
        raise AssertionError("expected a failure")


def test_keys_never_appear_in_errors_or_log_lines(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    png = tmp_path / "k.png"
    png.write_bytes(b"png")
    echo = {"detail": f"invalid key {FAL_SECRET}", "title": f"token {REP_SECRET} refused"}
    fal_script = Script()
    fal_script.on(
        "POST",
        "https://q.test/fal-ai/app/x",
        Reply(401, echo),
        Reply(422, echo),
        Reply(error=httpx.ReadError),
        Reply(500, echo),
    )
    fal_script.on("GET", "https://q.test/fal-ai/app/requests/r/status", Reply(429, echo))
    fal_script.on("POST", "https://rest.test/storage/auth/token", Reply(403, echo))
    fal_script.on("GET", "https://cdn.test/o.mp4", Reply(raw=b"x", headers={"Content-Length": "9"}))
    fal = FalProvider(
        key=FAL_SECRET,
        settings=FalSettings(queue_url="https://q.test", rest_url="https://rest.test"),
        client=fal_script.client(),
        sleep=Sleeps(),
        policy=RetryPolicy(attempts=2, download_attempts=2),
    )
    rep_script = Script()
    rep_script.on(
        "POST",
        "https://r.test/v1/models/a/b/predictions",
        Reply(401, echo),
        Reply(422, echo),
        Reply(error=httpx.RemoteProtocolError),
    )
    rep_script.on("GET", "https://r.test/v1/predictions/p", Reply(503, echo))
    rep = ReplicateProvider(
        token=REP_SECRET,
        settings=ReplicateSettings(base_url="https://r.test/v1"),
        client=rep_script.client(),
        sleep=Sleeps(),
        policy=RetryPolicy(attempts=2),
    )
    errors: list[str] = []
    for _ in range(4):
        collect(errors, fal.submit("fal-ai/app/x", {"prompt": "x"}))
    handle = JobHandle(
        "fal", "r", "fal-ai/app/x", request_urls("https://q.test", "fal-ai/app/x", "r")
    )
    collect(errors, fal.poll(handle))
    collect(errors, fal.upload(png))
    collect(errors, fal.fetch(JobResult(video_url="https://cdn.test/o.mp4"), tmp_path / "o.mp4"))
    for _ in range(3):
        collect(errors, rep.submit("a/b", {"prompt": "x"}))
    collect(
        errors,
        rep.poll(JobHandle("replicate", "p", "a/b", {"get": "https://r.test/v1/predictions/p"})),
    )
    assert len(errors) == 3 * 11
    assert any("***" in e for e in errors)  # the echoed keys were there, and were scrubbed
    lines = [r.getMessage() for r in caplog.records]
    assert any("try 2 of 2" in line for line in lines)  # retries are logged
    for text in [*errors, *lines, repr(fal), repr(rep)]:
        assert FAL_SECRET not in text and REP_SECRET not in text, text
    assert secrets.redact(f"x {FAL_SECRET} {REP_SECRET}") == "x *** ***"
