"""The fal.ai provider: storage upload, queue submit, status, result, download, cancel.

Protocol (PROVIDERS.md): submit ``POST {queue}/{endpoint}``; status, result and cancel through
the URLs the submit returned (owner/app form, without the sub-path). A failed job is
``COMPLETED`` with ``error``/``error_type``. Retries follow fal's own client: 408, 409, 429 and
ingress-level 502/503/504 (no ``x-fal-request-id`` header) with backoff and jitter, honouring
Retry-After; never a 422 or a 504 that is the caller's own timeout.
"""

from __future__ import annotations

import asyncio
import mimetypes
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
from aivpbuild.providers.settings import FalSettings
from aivpbuild.secrets import FAL_KEY, load_key

RETRY_STATUSES = {408, 409, 429}
INGRESS_STATUSES = {502, 503, 504}
MAX_ATTEMPTS = 6
NAMESPACES = ("workflows", "comfy")


def owner_app(endpoint: str) -> str:
    """``fal-ai/bytedance/seedance/v1.5/pro/text-to-video`` → ``fal-ai/bytedance``
    (``workflows/`` and ``comfy/`` are namespaces: everything shifts by one)."""
    parts = endpoint.strip("/").split("/")
    if parts[0] in NAMESPACES:
        return "/".join(parts[:3])
    return "/".join(parts[:2])


class FalProvider(HttpProvider):
    name: ClassVar[str] = "fal"
    version: ClassVar[str] = "1"
    paid: ClassVar[bool] = True
    default_concurrency: ClassVar[int] = 8

    def __init__(self, *, key: str, settings: FalSettings, client: httpx.AsyncClient | None = None,
                 sleep: Sleep = asyncio.sleep) -> None:
        super().__init__(settings=settings, client=client, sleep=sleep)
        self._key = key

    @classmethod
    def from_settings(cls, settings: FalSettings | None, root: Path,
                      client: httpx.AsyncClient | None = None) -> FalProvider:
        key = load_key(FAL_KEY, root)
        if not key:
            raise ConfigError(
                "no fal.ai key: set FAL_KEY in the environment or in a .env file "
                "(the project's, ~/.env or ~/.aivp/.env)",
                hint="get a key at fal.ai; or build with --profile using provider: local")
        return cls(key=key, settings=(settings or FalSettings()).resolved(), client=client)

    # ------------------------------------------------------------------ http
    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Key {self._key}"}

    async def _call(self, method: str, url: str, *, what: str, submit: bool = False,
                    **kwargs: Any) -> httpx.Response:
        """One API call with fal's retry rules. A submit is never retried once it may have been
        accepted: only refusals (429, ingress errors) and connection failures before sending."""
        for attempt in range(MAX_ATTEMPTS):
            try:
                response = await self.client.request(method, url, headers=self._auth(), **kwargs)
            except httpx.ConnectError:
                if attempt == MAX_ATTEMPTS - 1:
                    raise ProviderError(f"{what}: cannot connect to fal.ai", retryable=True) from None
                await self._sleep(backoff(attempt))
                continue
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                if submit:
                    raise SubmitUncertain(
                        f"{what}: the connection failed after the request was sent "
                        f"({type(exc).__name__}); fal may have accepted (and will bill) the job",
                        hint="see `aivpbuild jobs`; run with --resubmit-uncertain to submit again") from None
                if attempt == MAX_ATTEMPTS - 1:
                    raise ProviderError(f"{what}: {type(exc).__name__} talking to fal.ai", retryable=True) from None
                await self._sleep(backoff(attempt))
                continue
            if not self._retryable(response) or attempt == MAX_ATTEMPTS - 1:
                return response
            await self._sleep(retry_after(response) or backoff(attempt))
        raise AssertionError("unreachable")

    @staticmethod
    def _retryable(response: httpx.Response) -> bool:
        status = response.status_code
        if status in RETRY_STATUSES:
            return True
        if status in INGRESS_STATUSES:
            if status == 504 and "x-fal-request-timeout-type" in response.headers:
                return False  # the caller's own timeout: the job ran and was billed
            return "x-fal-request-id" not in response.headers  # never reached the app
        return False

    def _raise(self, response: httpx.Response, what: str) -> None:
        status = response.status_code
        if status < 400:
            return
        kind = response.headers.get("x-fal-error-type")
        text = detail(response)
        if status == 422:
            raise ProviderError(f"{what}: fal rejected the input (422): {text}",
                                hint="check the clip's parameters against `aivpbuild models`")
        if status in (401, 403):
            raise ProviderError(f"{what}: fal refused the key ({status})",
                                hint="check FAL_KEY (it is never printed)")
        raise ProviderError(f"{what}: fal answered {status}{f' ({kind})' if kind else ''}: {text}",
                            retryable=status >= 500)

    # ------------------------------------------------------------------ the interface
    async def upload(self, path: Path) -> str:
        token_response = await self._call(
            "POST", f"{self.settings.rest_url}/storage/auth/token", what=f"upload of {path.name}",
            params={"storage_type": "fal-cdn-v3"}, json={})
        self._raise(token_response, f"upload of {path.name}")
        token = json_body(token_response, "storage token")
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        response = await self.client.post(
            f"{str(token['base_url']).rstrip('/')}/files/upload", content=path.read_bytes(),
            headers={"Authorization": f"{token.get('token_type', 'Bearer')} {token['token']}",
                     "Content-Type": content_type, "X-Fal-File-Name": path.name})
        self._raise(response, f"upload of {path.name}")
        return str(json_body(response, "upload")["access_url"])

    def build_input(self, request: GenerationRequest, uploaded: Mapping[Path, str]) -> dict[str, Any]:
        payload = dict(request.payload)
        for name, path in request.file_inputs.items():
            payload[name] = uploaded[path]
        return payload

    async def submit(self, endpoint: str, payload: Mapping[str, Any]) -> JobHandle:
        what = f"submit to {endpoint}"
        response = await self._call("POST", f"{self.settings.queue_url}/{endpoint}", what=what,
                                    submit=True, json=dict(payload))
        self._raise(response, what)
        body = json_body(response, what)
        request_id = str(body["request_id"])
        base = f"{self.settings.queue_url}/{owner_app(endpoint)}/requests/{request_id}"
        urls = {
            "status": str(body.get("status_url") or f"{base}/status"),
            "response": str(body.get("response_url") or base),
            "cancel": str(body.get("cancel_url") or f"{base}/cancel"),
        }
        return JobHandle(provider=self.name, request_id=request_id, endpoint=endpoint, urls=urls)

    async def poll(self, handle: JobHandle) -> JobStatus:
        what = f"status of {handle.request_id}"
        response = await self._call("GET", handle.urls["status"], what=what, params={"logs": 1})
        self._raise(response, what)
        body = json_body(response, what)
        status = body.get("status")
        logs = self.new_logs(handle.request_id, [
            str(item.get("message", item)) if isinstance(item, dict) else str(item)
            for item in body.get("logs") or []])
        if status == "IN_QUEUE":
            return Queued(position=body.get("queue_position"))
        if status == "IN_PROGRESS":
            return Running(logs=logs)
        if status == "COMPLETED":
            if body.get("error"):
                return Failed(error=str(body["error"]), error_type=body.get("error_type"), billed=True)
            return Completed(logs=logs)
        raise ProviderError(f"{what}: unknown status {status!r}")

    async def result(self, handle: JobHandle) -> JobResult:
        what = f"result of {handle.request_id}"
        response = await self._call("GET", handle.urls["response"], what=what)
        self._raise(response, what)
        body = json_body(response, what)
        video = body.get("video") or {}
        if not isinstance(video, dict) or not video.get("url"):
            raise ProviderError(f"{what}: the result has no video URL")
        return JobResult(video_url=str(video["url"]), seed=body.get("seed"),
                         metadata={"file_size": video.get("file_size"),
                                   "content_type": video.get("content_type")})

    async def fetch(self, result: JobResult, dest: Path) -> None:
        await download(self.client, str(result.video_url), dest, sleep=self._sleep, what="fal output")

    async def cancel(self, handle: JobHandle) -> None:
        response = await self._call("PUT", handle.urls["cancel"], what=f"cancel of {handle.request_id}")
        if response.status_code not in (200, 202, 400, 404):  # 400: already completed, 404: gone
            self._raise(response, f"cancel of {handle.request_id}")
