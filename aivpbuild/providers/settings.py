"""Provider settings: the manifest's ``providers:`` section, with environment overrides.

Every base URL is a setting (tests point them at fakes on 127.0.0.1). Environment variables
win over the manifest, which wins over the production defaults.
"""

from __future__ import annotations

import os

from pydantic import BaseModel, ConfigDict, Field

ENV_FAL_QUEUE_URL = "AIVP_FAL_QUEUE_URL"
ENV_FAL_REST_URL = "AIVP_FAL_REST_URL"
ENV_REPLICATE_BASE_URL = "AIVP_REPLICATE_BASE_URL"
ENV_COMFYUI_SERVERS = "AIVP_COMFYUI_SERVERS"


class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    concurrency: int | None = Field(None, ge=1, le=256, description="Jobs in flight at once.")
    poll_interval: float = Field(2.0, gt=0, le=60, description="Seconds between status polls.")
    timeout: float = Field(60.0, gt=0, description="Seconds before one HTTP request times out.")


class FalSettings(_Settings):
    queue_url: str = Field("https://queue.fal.run", description="fal queue API base URL.")
    rest_url: str = Field("https://rest.fal.ai", description="fal REST API base URL (uploads).")

    def resolved(self) -> FalSettings:
        return self.model_copy(update={
            "queue_url": os.environ.get(ENV_FAL_QUEUE_URL, self.queue_url).rstrip("/"),
            "rest_url": os.environ.get(ENV_FAL_REST_URL, self.rest_url).rstrip("/"),
        })


class ReplicateSettings(_Settings):
    base_url: str = Field("https://api.replicate.com/v1", description="Replicate API base URL.")

    def resolved(self) -> ReplicateSettings:
        return self.model_copy(update={
            "base_url": os.environ.get(ENV_REPLICATE_BASE_URL, self.base_url).rstrip("/")})


class ComfyUISettings(_Settings):
    servers: list[str] = Field(default_factory=lambda: ["http://127.0.0.1:8188"],
                               description="ComfyUI server URLs; jobs are spread over them.")

    def resolved(self) -> ComfyUISettings:
        env = os.environ.get(ENV_COMFYUI_SERVERS)
        servers = [s.strip().rstrip("/") for s in env.split(",")] if env else self.servers
        return self.model_copy(update={"servers": [s.rstrip("/") for s in servers if s]})


class ProvidersSettings(BaseModel):
    """The manifest's ``providers:`` section."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    fal: FalSettings = Field(default_factory=FalSettings)
    replicate: ReplicateSettings = Field(default_factory=ReplicateSettings)
    comfyui: ComfyUISettings = Field(default_factory=ComfyUISettings)
