"""Provider settings: the manifest's ``providers:`` section, with environment overrides.

Every base URL is a setting (tests point them at fakes on 127.0.0.1). Environment variables
win over the manifest, which wins over the production defaults of PROVIDERS.md.
"""

from __future__ import annotations

import os
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from aivpbuild.errors import ConfigError

#: Every environment variable the provider settings read, in one place.
ENV_FAL_QUEUE_URL = "AIVP_FAL_QUEUE_URL"
ENV_FAL_REST_URL = "AIVP_FAL_REST_URL"
ENV_REPLICATE_BASE_URL = "AIVP_REPLICATE_BASE_URL"
ENV_COMFYUI_SERVERS = "AIVP_COMFYUI_SERVERS"
ENV_VARS = (ENV_FAL_QUEUE_URL, ENV_FAL_REST_URL, ENV_REPLICATE_BASE_URL, ENV_COMFYUI_SERVERS)

FAL_QUEUE_URL = "https://queue.fal.run"
FAL_REST_URL = "https://rest.fal.ai"
REPLICATE_BASE_URL = "https://api.replicate.com/v1"
COMFYUI_SERVER = "http://127.0.0.1:8188"


def _url(value: str, where: str) -> str:
    value = value.strip().rstrip("/")
    if not value.startswith(("http://", "https://")) or len(value) <= len("https://"):
        raise ValueError(
            f"{where}: {value!r} is not an http(s) URL (e.g. https://host or http://127.0.0.1:8188)"
        )
    return value


def _env_url(var: str, default: str) -> str:
    value = os.environ.get(var)
    if not value:
        return default
    try:
        return _url(value, f"environment variable {var}")
    except ValueError as exc:
        raise ConfigError(str(exc), hint=f"fix or unset {var}") from None


class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    concurrency: int | None = Field(
        None,
        ge=1,
        le=256,
        description="Jobs in flight at once (default: fal 8, replicate 8, comfyui one per server).",
    )
    poll_interval: float = Field(
        2.0, gt=0, le=60, description="Longest wait in seconds between status polls."
    )
    timeout: float = Field(
        60.0, gt=0, le=3600, description="Seconds before one HTTP request times out."
    )
    http_transport: Literal["auto", "aiohttp", "httpx"] = Field(
        "auto",
        description="HTTP engine: aiohttp (much less CPU per request; the `aiohttp` extra), "
        "httpx's own, or auto (aiohttp when installed).",
    )


class FalSettings(_Settings):
    """Settings of the fal.ai queue API (providers.fal)."""

    queue_url: str = Field(
        FAL_QUEUE_URL, description=f"fal queue API base URL (env {ENV_FAL_QUEUE_URL})."
    )
    rest_url: str = Field(
        FAL_REST_URL, description=f"fal REST API base URL, for uploads (env {ENV_FAL_REST_URL})."
    )
    status_stream: bool = Field(
        True,
        description="Follow jobs on fal's status stream (server-sent events) instead of "
        "polling; polling is the fallback when the stream is refused or breaks.",
    )

    @field_validator("queue_url", "rest_url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        return _url(value, "providers.fal")

    def resolved(self) -> FalSettings:
        """These settings with the environment overrides applied."""
        return self.model_copy(
            update={
                "queue_url": _env_url(ENV_FAL_QUEUE_URL, self.queue_url),
                "rest_url": _env_url(ENV_FAL_REST_URL, self.rest_url),
            }
        )


class ReplicateSettings(_Settings):
    """Settings of the Replicate predictions API (providers.replicate)."""

    base_url: str = Field(
        REPLICATE_BASE_URL, description=f"Replicate API base URL (env {ENV_REPLICATE_BASE_URL})."
    )

    @field_validator("base_url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        return _url(value, "providers.replicate.base_url")

    def resolved(self) -> ReplicateSettings:
        """These settings with the environment override applied."""
        return self.model_copy(update={"base_url": _env_url(ENV_REPLICATE_BASE_URL, self.base_url)})


class ComfyUISettings(_Settings):
    """Settings of the ComfyUI server pool (providers.comfyui)."""

    servers: list[str] = Field(
        default_factory=lambda: [COMFYUI_SERVER],
        min_length=1,
        description=f"ComfyUI server URLs; jobs go to the least-loaded live one "
        f"(env {ENV_COMFYUI_SERVERS}, comma-separated).",
    )

    @field_validator("servers")
    @classmethod
    def _check_servers(cls, value: list[str]) -> list[str]:
        urls = [_url(v, "providers.comfyui.servers") for v in value]
        return list(dict.fromkeys(urls))  # a server listed twice is still one server

    def resolved(self) -> ComfyUISettings:
        """These settings with the environment override applied."""
        env = os.environ.get(ENV_COMFYUI_SERVERS, "")
        if not env.strip():
            return self
        try:
            servers = self._check_servers([s for s in env.split(",") if s.strip()])
        except ValueError as exc:
            raise ConfigError(
                str(exc).replace(
                    "providers.comfyui.servers", f"environment variable {ENV_COMFYUI_SERVERS}"
                ),
                hint=f"fix or unset {ENV_COMFYUI_SERVERS}",
            ) from None
        return self.model_copy(update={"servers": servers})


class ProvidersSettings(BaseModel):
    """The manifest's ``providers:`` section."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    fal: FalSettings = Field(default_factory=FalSettings, description="fal.ai queue settings.")
    replicate: ReplicateSettings = Field(
        default_factory=ReplicateSettings, description="Replicate predictions API settings."
    )
    comfyui: ComfyUISettings = Field(
        default_factory=ComfyUISettings, description="ComfyUI server pool settings."
    )
