"""The fal.ai provider: storage upload, queue submit, status, result, download, cancel.

Protocol (PROVIDERS.md): submit ``POST {queue}/{endpoint}``; status, result and cancel through
the URLs the submit returned (owner/app form, without the sub-path). A job is followed on its
status stream (``{status_url}/stream``, server-sent events), or polled when the stream is
refused or breaks. A failed job is
``COMPLETED`` with ``error``/``error_type``. Retries follow fal's own client: 408, 409, 429 and
ingress-level 502/503/504 (no ``x-fal-request-id`` header) with backoff and jitter, honouring
Retry-After; never a 422 or a 504 that is the caller's own timeout. A submit whose connection
breaks after sending raises :class:`SubmitUncertain` instead of being retried.
"""

from __future__ import annotations

import asyncio
import json
import mimetypes
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import httpx

from aivpbuild.errors import ConfigError, ProviderError
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
from aivpbuild.providers.http import (
    DEFAULT_POLICY,
    HttpProvider,
    RetryPolicy,
    Sleep,
    detail,
    json_body,
    send,
)
from aivpbuild.providers.settings import FalSettings
from aivpbuild.providers.wire import Answer
from aivpbuild.secrets import FAL_KEY, load_key

RETRY_STATUSES = frozenset({408, 409, 429})
INGRESS_STATUSES = frozenset({502, 503, 504})
NAMESPACES = ("workflows", "comfy")
STORAGE_TYPE = "fal-cdn-v3"
#: Refresh a storage token this many seconds before it expires.
TOKEN_MARGIN = 60.0
#: A status stream silent this long is given up for polling (fal sends a comment every 15 s).
STREAM_READ_TIMEOUT = 45.0


def owner_app(endpoint: str) -> str:
    """``fal-ai/bytedance/seedance/v1.5/pro/text-to-video`` → ``fal-ai/bytedance``
    (``workflows/`` and ``comfy/`` are namespaces: everything shifts by one)."""
    parts = [p for p in endpoint.strip("/").split("/") if p]
    size = 3 if parts and parts[0] in NAMESPACES else 2
    if len(parts) < size:
        raise ProviderError(
            f"fal endpoint {endpoint!r} is not of the form owner/app[/path]",
            hint="use a full endpoint id such as fal-ai/kling-video/v2.1/pro/image-to-video",
        )
    return "/".join(parts[:size])


def request_urls(queue_url: str, endpoint: str, request_id: str) -> dict[str, str]:
    """Status, response and cancel URLs of a request, built as fal documents them."""
    base = f"{queue_url.rstrip('/')}/{owner_app(endpoint)}/requests/{request_id}"
    return {"status": f"{base}/status", "response": base, "cancel": f"{base}/cancel"}


def retryable(response: Answer) -> bool:
    """fal's own client's rule: 408/409/429, and 502/503/504 that never reached the app."""
    status = response.status_code
    if status in RETRY_STATUSES:
        return True
    if status in INGRESS_STATUSES:
        if status == 504 and "x-fal-request-timeout-type" in response.headers:
            return False  # the caller's own timeout: the job ran (and was billed)
        return "x-fal-request-id" not in response.headers
    return False


def _log_lines(logs: Any) -> list[str]:
    if not isinstance(logs, list):
        return []
    return [str(item.get("message", "")) if isinstance(item, dict) else str(item) for item in logs]


class FalProvider(HttpProvider):
    """fal.ai's queue API (``Authorization: Key <FAL_KEY>``)."""

    name: ClassVar[str] = "fal"
    version: ClassVar[str] = "1"
    paid: ClassVar[bool] = True
    default_concurrency: ClassVar[int] = 8

    def __init__(
        self,
        *,
        key: str,
        settings: FalSettings,
        client: httpx.AsyncClient | None = None,
        sleep: Sleep = asyncio.sleep,
        policy: RetryPolicy = DEFAULT_POLICY,
    ) -> None:
        super().__init__(settings=settings, client=client, sleep=sleep, policy=policy)
        self._key = key
        self._keep_secret(key)
        self._token: dict[str, Any] | None = None
        self._token_until = 0.0
        self._metrics: dict[str, dict[str, Any]] = {}
        self._stream_works = True

    @classmethod
    def from_settings(
        cls,
        settings: FalSettings | None,
        project_root: Path,
        client: httpx.AsyncClient | None = None,
    ) -> FalProvider:
        key = load_key(FAL_KEY, project_root)
        if not key:
            raise ConfigError(
                "no fal.ai key: set FAL_KEY in the environment or in a .env file "
                f"({project_root / '.env'}, ~/.env or ~/.aivp/.env), e.g. FAL_KEY=...",
                hint="create a key in the fal.ai dashboard, or build with provider: local",
            )
        return cls(key=key, settings=(settings or FalSettings()).resolved(), client=client)

    # ------------------------------------------------------------------ http
    async def _send(
        self, method: str, url: str, *, what: str, submit: bool = False, **kwargs: Any
    ) -> Answer:
        headers = {"Authorization": f"Key {self._key}", **kwargs.pop("headers", {})}
        return await send(
            self.wire,
            method,
            url,
            what=what,
            provider="fal.ai",
            retry_on=retryable,
            sleep=self._sleep,
            policy=self.policy,
            idempotent=not submit,
            headers=headers,
            **kwargs,
        )

    def _check(self, response: Answer, what: str) -> None:
        """Turn an error status into a ProviderError with fal's own explanation."""
        status = response.status_code
        if status < 400:
            return
        text = self.scrub(detail(response))
        if status == 422:
            raise ProviderError(
                f"{what}: fal rejected the input (422): {text}",
                hint="check the clip's parameters against `aivpbuild models`",
            )
        if status in (401, 403):
            raise ProviderError(
                f"{what}: fal refused the key (HTTP {status})",
                hint="check FAL_KEY (the key itself is never printed)",
            )
        kind = response.headers.get("x-fal-error-type") or response.headers.get(
            "x-fal-request-timeout-type"
        )
        raise ProviderError(
            f"{what}: fal answered HTTP {status}{f' ({kind})' if kind else ''}: {text}",
            retryable=status >= 500 or status in RETRY_STATUSES,
        )

    # ------------------------------------------------------------------ upload
    async def _storage_token(self, what: str) -> dict[str, Any]:
        if self._token is not None and time.time() < self._token_until:
            return self._token
        response = await self._send(
            "POST",
            f"{self.settings.rest_url}/storage/auth/token",
            what=what,
            params={"storage_type": STORAGE_TYPE},
            json={},
        )
        self._check(response, what)
        token = json_body(response, f"{what} (storage token)")
        if not token.get("token") or not token.get("base_url"):
            raise ProviderError(f"{what}: the storage token response has no token or base_url")
        self._token, self._token_until = token, self._expiry(token.get("expires_at"))
        return token

    @staticmethod
    def _expiry(value: Any) -> float:
        """When to stop using a token (a little before its ``expires_at``; unknown: now)."""
        from datetime import datetime

        try:
            when = datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
        except ValueError:
            return 0.0
        return when - TOKEN_MARGIN

    async def upload(self, path: Path) -> str:
        what = f"upload of {path.name} to fal storage"
        token = await self._storage_token(what)
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        response = await send(
            self.wire,
            "POST",
            f"{str(token['base_url']).rstrip('/')}/files/upload",
            what=what,
            provider="fal.ai",
            retry_on=retryable,
            sleep=self._sleep,
            policy=self.policy,
            content=path.read_bytes(),
            headers={
                "Authorization": f"{token.get('token_type') or 'Bearer'} {token['token']}",
                "Content-Type": content_type,
                "X-Fal-File-Name": path.name,
            },
        )
        if response.status_code in (401, 403):
            self._token = None  # the token was revoked or expired early: the next upload asks anew
        self._check(response, what)
        url = json_body(response, what).get("access_url")
        if not url:
            raise ProviderError(f"{what}: the storage answer has no access_url")
        return str(url)

    # ------------------------------------------------------------------ the interface
    def build_input(
        self, request: GenerationRequest, uploaded: Mapping[Path, str]
    ) -> dict[str, Any]:
        payload = dict(request.payload)
        for field_name, path in request.file_inputs.items():
            if path not in uploaded:
                raise ProviderError(
                    f"{request.target}: {path} was not uploaded before building the input"
                )
            payload[field_name] = uploaded[path]
        return payload

    async def submit(self, endpoint: str, payload: Mapping[str, Any]) -> JobHandle:
        what = f"submit to {endpoint}"
        owner_app(endpoint)  # a malformed endpoint fails here, before anything is sent
        response = await self._send(
            "POST",
            f"{self.settings.queue_url}/{endpoint.strip('/')}",
            what=what,
            submit=True,
            json=dict(payload),
        )
        self._check(response, what)
        body = json_body(response, what)
        if not body.get("request_id"):
            raise ProviderError(
                f"{what}: fal accepted the job but sent no request_id",
                hint="see `aivpbuild jobs`; the job may be running on fal",
            )
        request_id = str(body["request_id"])
        urls = request_urls(self.settings.queue_url, endpoint, request_id)
        for name in ("status", "response", "cancel"):
            if body.get(f"{name}_url"):
                urls[name] = str(body[f"{name}_url"])
        return JobHandle(provider=self.name, request_id=request_id, endpoint=endpoint, urls=urls)

    async def poll(self, handle: JobHandle) -> JobStatus:
        what = f"status of fal request {handle.request_id}"
        response = await self._send("GET", handle.urls["status"], what=what, params={"logs": "1"})
        self._check(response, what)
        return self._status_of(handle, json_body(response, what), what)

    def _status_of(self, handle: JobHandle, body: dict[str, Any], what: str) -> JobStatus:
        """A status object (from a poll or a stream event) as a :class:`JobStatus`."""
        status = body.get("status")
        if status == "IN_QUEUE":
            position = body.get("queue_position")
            return Queued(position=position if isinstance(position, int) else None)
        logs = self.new_logs(handle.request_id, _log_lines(body.get("logs")))
        if status == "IN_PROGRESS":
            return Running(logs=logs)
        if status == "COMPLETED":
            if body.get("error"):
                return Failed(
                    error=str(body["error"]), error_type=body.get("error_type"), billed=True
                )
            if isinstance(body.get("metrics"), dict):
                self._metrics[handle.request_id] = body["metrics"]
            return Completed(logs=logs)
        raise ProviderError(f"{what}: unknown status {status!r}")

    async def wait(
        self, handle: JobHandle, on_status: Callable[[JobStatus], None] | None = None
    ) -> Completed | Failed:
        """Follow the job on fal's status stream (one request per job, completion seen at once);
        poll instead when the stream is switched off, refused, or breaks."""
        if self.settings.status_stream and self._stream_works:
            outcome = await self._follow_stream(handle, on_status)
            if outcome is not None:
                return outcome
        return await super().wait(handle, on_status)

    async def _follow_stream(
        self, handle: JobHandle, on_status: Callable[[JobStatus], None] | None
    ) -> Completed | Failed | None:
        """Read ``{status_url}/stream`` (server-sent events) to the end; None when it gave no
        final status (the caller polls: the poll path has the retry rules and error messages)."""
        what = f"status stream of fal request {handle.request_id}"
        headers = {"Authorization": f"Key {self._key}", "Accept": "text/event-stream"}
        url = handle.urls["status"].rstrip("/") + "/stream"
        try:
            async with self.wire.stream(
                "GET", url, params={"logs": "1"}, headers=headers, read_timeout=STREAM_READ_TIMEOUT
            ) as response:
                if response.status_code != 200:
                    if response.status_code in (404, 405, 501):
                        self._stream_works = False  # not offered here: poll from now on
                    return None
                async for line in response.aiter_lines():
                    if not line.startswith("data:"):
                        continue  # blank separators and ": keep-alive" comments
                    status = self._status_of(handle, json.loads(line[5:]), what)
                    if on_status is not None:
                        on_status(status)
                    if isinstance(status, Completed | Failed):
                        return status
        except (httpx.TransportError, ValueError, ProviderError):
            return None
        return None

    async def result(self, handle: JobHandle) -> JobResult:
        what = f"result of fal request {handle.request_id}"
        response = await self._send("GET", handle.urls["response"], what=what)
        self._check(response, what)
        body = json_body(response, what)
        video = body.get("video")
        if not isinstance(video, dict) or not video.get("url"):
            raise ProviderError(
                f"{what}: the result has no video URL",
                hint="the endpoint may not be a video model; check the model's endpoint",
            )
        seed = body.get("seed")
        metadata: dict[str, Any] = {
            "request_id": handle.request_id,
            "file_size": video.get("file_size"),
            "content_type": video.get("content_type"),
            "file_name": video.get("file_name"),
        }
        inference = self._metrics.pop(handle.request_id, {}).get("inference_time")
        if inference is not None:
            metadata["inference_time"] = inference
        return JobResult(
            video_url=str(video["url"]),
            seed=seed if isinstance(seed, int) else None,
            metadata=metadata,
        )

    async def fetch(self, result: JobResult, dest: Path) -> None:
        size = result.metadata.get("file_size")
        await self.fetch_to(
            result.video_url,
            dest,
            what="fal output",
            expected_size=size if isinstance(size, int) and size > 0 else None,
        )

    async def cancel(self, handle: JobHandle) -> None:
        what = f"cancel of fal request {handle.request_id}"
        response = await self._send("PUT", handle.urls["cancel"], what=what)
        if response.status_code in (400, 404):  # already completed, or gone: nothing to stop
            return
        self._check(response, what)
