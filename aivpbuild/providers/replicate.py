"""The Replicate provider: file upload, create a prediction, poll, download, cancel.

Protocol (PROVIDERS.md): ``POST /models/{owner}/{name}/predictions`` (model form) or
``POST /predictions`` with a ``version`` (version form), ``{"input": {...}}``; poll the
prediction's ``urls.get``; ``output`` is a URL or a list of URLs. Errors are problem+json. Like
the official client, a create POST is never retried blindly (that could charge twice): only a
429, which means the server refused it, is retried after Retry-After. GETs are retried on
429/503/504 and on connection errors.
"""

from __future__ import annotations

import asyncio
import mimetypes
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import httpx

from aivpbuild.errors import ConfigError, ProviderError, SubmitUncertain
from aivpbuild.providers.base import (
    Completed,
    Failed,
    GenerationRequest,
    JobHandle,
    JobResult,
    JobStatus,
    Queued,
    Running,
)
from aivpbuild.providers.http import HttpProvider, Sleep, backoff, detail, download, json_body, retry_after
from aivpbuild.providers.settings import ReplicateSettings
from aivpbuild.secrets import REPLICATE_API_TOKEN, load_key

GET_RETRY_STATUSES = {429, 503, 504}
MAX_ATTEMPTS = 6
_VERSION = re.compile(r"^[0-9a-f]{64}$")


class ReplicateProvider(HttpProvider):
    name: ClassVar[str] = "replicate"
    version: ClassVar[str] = "1"
    paid: ClassVar[bool] = True
    default_concurrency: ClassVar[int] = 8

    def __init__(self, *, token: str, settings: ReplicateSettings, client: httpx.AsyncClient | None = None,
                 sleep: Sleep = asyncio.sleep) -> None:
        super().__init__(settings=settings, client=client, sleep=sleep)
        self._token = token

    @classmethod
    def from_settings(cls, settings: ReplicateSettings | None, root: Path,
                      client: httpx.AsyncClient | None = None) -> ReplicateProvider:
        token = load_key(REPLICATE_API_TOKEN, root)
        if not token:
            raise ConfigError(
                "no Replicate token: set REPLICATE_API_TOKEN in the environment or in a .env file "
                "(the project's, ~/.env or ~/.aivp/.env)", hint="create one at replicate.com/account")
        return cls(token=token, settings=(settings or ReplicateSettings()).resolved(), client=client)

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token}"}

    async def _get(self, url: str, what: str) -> httpx.Response:
        for attempt in range(MAX_ATTEMPTS):
            try:
                response = await self.client.get(url, headers=self._auth())
            except httpx.TransportError as exc:
                if attempt == MAX_ATTEMPTS - 1:
                    raise ProviderError(f"{what}: {type(exc).__name__} talking to Replicate", retryable=True) from None
                await self._sleep(backoff(attempt))
                continue
            if response.status_code not in GET_RETRY_STATUSES or attempt == MAX_ATTEMPTS - 1:
                self._raise(response, what)
                return response
            await self._sleep(retry_after(response) or backoff(attempt))
        raise AssertionError("unreachable")

    @staticmethod
    def _raise(response: httpx.Response, what: str) -> None:
        status = response.status_code
        if status < 400:
            return
        if status in (401, 403):
            raise ProviderError(f"{what}: Replicate refused the token ({status})",
                                hint="check REPLICATE_API_TOKEN (it is never printed)")
        raise ProviderError(f"{what}: Replicate answered {status}: {detail(response)}", retryable=status >= 500)

    # ------------------------------------------------------------------ the interface
    async def upload(self, path: Path) -> str:
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        try:
            response = await self.client.post(
                f"{self.settings.base_url}/files", headers=self._auth(),
                files={"content": (path.name, path.read_bytes(), content_type)})
        except httpx.TransportError as exc:
            raise ProviderError(f"upload of {path.name}: {type(exc).__name__}", retryable=True) from None
        self._raise(response, f"upload of {path.name}")
        return str(json_body(response, "upload")["urls"]["get"])

    def build_input(self, request: GenerationRequest, uploaded: Mapping[Path, str]) -> dict[str, Any]:
        payload = dict(request.payload)
        for name, path in request.file_inputs.items():
            payload[name] = uploaded[path]
        return payload

    async def submit(self, endpoint: str, payload: Mapping[str, Any]) -> JobHandle:
        model, _, version = endpoint.partition(":")
        if _VERSION.match(model):
            url, body = f"{self.settings.base_url}/predictions", {"version": model, "input": dict(payload)}
        elif version:
            url, body = f"{self.settings.base_url}/predictions", {"version": version, "input": dict(payload)}
        else:
            url, body = f"{self.settings.base_url}/models/{model}/predictions", {"input": dict(payload)}
        what = f"create prediction on {endpoint}"
        for attempt in range(MAX_ATTEMPTS):
            try:
                response = await self.client.post(url, headers=self._auth(), json=body)
            except httpx.ConnectError:
                if attempt == MAX_ATTEMPTS - 1:
                    raise ProviderError(f"{what}: cannot connect to Replicate", retryable=True) from None
                await self._sleep(backoff(attempt))
                continue
            except httpx.TransportError as exc:
                raise SubmitUncertain(
                    f"{what}: the connection failed after the request was sent ({type(exc).__name__}); "
                    "Replicate may have created (and will bill) the prediction",
                    hint="see `aivpbuild jobs`; run with --resubmit-uncertain to submit again") from None
            if response.status_code == 429 and attempt < MAX_ATTEMPTS - 1:  # refused: safe to retry
                await self._sleep(retry_after(response) or backoff(attempt))
                continue
            break
        if response.status_code == 422:
            raise ProviderError(f"{what}: Replicate rejected the input (422): {detail(response)}",
                                hint="check the clip's params against the model's inputs")
        self._raise(response, what)
        prediction = json_body(response, what)
        urls = prediction.get("urls") or {}
        pid = str(prediction["id"])
        base = f"{self.settings.base_url}/predictions/{pid}"
        return JobHandle(provider=self.name, request_id=pid, endpoint=endpoint,
                         urls={"get": str(urls.get("get") or base),
                               "cancel": str(urls.get("cancel") or f"{base}/cancel")})

    async def poll(self, handle: JobHandle) -> JobStatus:
        prediction = json_body(await self._get(handle.urls["get"], f"status of {handle.request_id}"), "status")
        status = prediction.get("status")
        logs = self.new_logs(handle.request_id, str(prediction.get("logs") or "").splitlines())
        if status == "starting":
            return Queued()
        if status == "processing":
            return Running(logs=logs)
        if status == "succeeded":
            return Completed(logs=logs)
        if status in ("failed", "canceled"):
            return Failed(error=str(prediction.get("error") or status), error_type=status, billed=status == "failed")
        raise ProviderError(f"status of {handle.request_id}: unknown status {status!r}")

    async def result(self, handle: JobHandle) -> JobResult:
        prediction = json_body(await self._get(handle.urls["get"], f"result of {handle.request_id}"), "result")
        output = prediction.get("output")
        urls = [output] if isinstance(output, str) else [o for o in output or [] if isinstance(o, str)]
        videos = [u for u in urls if u.split("?")[0].endswith((".mp4", ".mov", ".webm"))]
        video = (videos or urls or [""])[0]
        if not video:
            raise ProviderError(f"result of {handle.request_id}: the prediction has no output URL")
        metrics = prediction.get("metrics") or {}
        return JobResult(video_url=video, seed=(prediction.get("input") or {}).get("seed"),
                         metadata={"predict_time": metrics.get("predict_time")})

    async def fetch(self, result: JobResult, dest: Path) -> None:
        await download(self.client, result.video_url, dest, sleep=self._sleep, what="Replicate output")

    async def cancel(self, handle: JobHandle) -> None:
        try:
            response = await self.client.post(handle.urls["cancel"], headers=self._auth())
        except httpx.TransportError as exc:
            raise ProviderError(f"cancel of {handle.request_id}: {type(exc).__name__}") from None
        if response.status_code >= 400 and response.status_code != 404:
            self._raise(response, f"cancel of {handle.request_id}")
