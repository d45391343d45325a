"""The Replicate provider: file upload, create a prediction, poll, download, cancel.

Protocol (PROVIDERS.md): ``POST /models/{owner}/{name}/predictions`` (model form) or
``POST /predictions`` with a ``version`` (version form), ``{"input": {...}}``; poll the
prediction's ``urls.get``; ``output`` is a URL or a list of URLs. Errors are problem+json
(``title``, ``detail``). GETs are retried on 429/503/504 and on transport errors, honouring
Retry-After.

A create POST is never retried blindly, since creating twice charges twice. The one safe retry
is a 429: the rate limiter answers it *instead of* creating the prediction, so nothing exists
and nothing is billed, and waiting Retry-After before asking again cannot make a second one.
A connection that was never made is also retried (the server saw nothing); a connection that
broke after the request was sent raises :class:`SubmitUncertain` for the journal to resolve.
"""

from __future__ import annotations

import asyncio
import mimetypes
import re
from collections.abc import Mapping
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
from aivpbuild.providers.settings import ReplicateSettings
from aivpbuild.providers.wire import Answer
from aivpbuild.secrets import REPLICATE_API_TOKEN, load_key

GET_RETRY_STATUSES = frozenset({429, 503, 504})
VIDEO_SUFFIXES = (".mp4", ".mov", ".webm", ".mkv", ".m4v")
_VERSION_ID = re.compile(r"^[0-9a-f]{64}$")
_MODEL = re.compile(r"^[\w.-]+/[\w.-]+$")


def create_route(base_url: str, endpoint: str) -> tuple[str, dict[str, Any]]:
    """The create URL and the body fields besides ``input``: ``owner/name`` is the model
    form; a 64-hex version id or ``owner/name:version`` is the version form."""
    model, colon, version = endpoint.strip().partition(":")
    if _VERSION_ID.match(model) and not colon:
        return f"{base_url}/predictions", {"version": model}
    if version and _MODEL.match(model):
        return f"{base_url}/predictions", {"version": version}
    if _MODEL.match(model) and not colon:
        return f"{base_url}/models/{model}/predictions", {}
    raise ProviderError(
        f"Replicate endpoint {endpoint!r} is neither owner/name, owner/name:version "
        "nor a 64-hex version id",
        hint="e.g. endpoint: kwaivgi/kling-v2.1",
    )


def first_video(output: Any) -> str | None:
    """The output's video URL: a URL, a list of URLs (first video wins) or a dict of them."""
    if isinstance(output, str):
        candidates = [output]
    elif isinstance(output, list):
        candidates = [o for o in output if isinstance(o, str)]
    elif isinstance(output, dict):
        candidates = [o for o in output.values() if isinstance(o, str)]
    else:
        candidates = []
    urls = [c for c in candidates if c.startswith(("http://", "https://"))]
    videos = [u for u in urls if u.split("?", 1)[0].lower().endswith(VIDEO_SUFFIXES)]
    chosen = videos or urls
    return chosen[0] if chosen else None


def _get_retryable(response: Answer) -> bool:
    return response.status_code in GET_RETRY_STATUSES


def _create_retryable(response: Answer) -> bool:
    return response.status_code == 429  # refused, not created: see the module docstring


class ReplicateProvider(HttpProvider):
    """Replicate's predictions API (``Authorization: Bearer <REPLICATE_API_TOKEN>``)."""

    name: ClassVar[str] = "replicate"
    version: ClassVar[str] = "1"
    paid: ClassVar[bool] = True
    default_concurrency: ClassVar[int] = 8

    def __init__(
        self,
        *,
        token: str,
        settings: ReplicateSettings,
        client: httpx.AsyncClient | None = None,
        sleep: Sleep = asyncio.sleep,
        policy: RetryPolicy = DEFAULT_POLICY,
    ) -> None:
        super().__init__(settings=settings, client=client, sleep=sleep, policy=policy)
        self._token = token
        self._keep_secret(token)

    @classmethod
    def from_settings(
        cls,
        settings: ReplicateSettings | None,
        project_root: Path,
        client: httpx.AsyncClient | None = None,
    ) -> ReplicateProvider:
        token = load_key(REPLICATE_API_TOKEN, project_root)
        if not token:
            raise ConfigError(
                "no Replicate token: set REPLICATE_API_TOKEN in the environment or in a .env "
                f"file ({project_root / '.env'}, ~/.env or ~/.aivp/.env), "
                "e.g. REPLICATE_API_TOKEN=r8_...",
                hint="create a token on replicate.com under Account → API tokens",
            )
        return cls(
            token=token, settings=(settings or ReplicateSettings()).resolved(), client=client
        )

    # ------------------------------------------------------------------ http
    async def _send(
        self, method: str, url: str, *, what: str, create: bool = False, **kwargs: Any
    ) -> Answer:
        headers = {"Authorization": f"Bearer {self._token}", **kwargs.pop("headers", {})}
        return await send(
            self.wire,
            method,
            url,
            what=what,
            provider="Replicate",
            retry_on=_create_retryable if create else _get_retryable,
            sleep=self._sleep,
            policy=self.policy,
            idempotent=not create,
            uncertain="created (and will bill) the prediction",
            headers=headers,
            **kwargs,
        )

    def _check(self, response: Answer, what: str) -> None:
        """Turn an error status into a ProviderError carrying the problem's title and detail."""
        status = response.status_code
        if status < 400:
            return
        text = self.scrub(detail(response))
        if status in (401, 403):
            raise ProviderError(
                f"{what}: Replicate refused the token (HTTP {status}): {text}",
                hint="check REPLICATE_API_TOKEN (the token itself is never printed)",
            )
        if status == 422:
            raise ProviderError(
                f"{what}: Replicate rejected the input (422): {text}",
                hint="check the clip's params against the model's inputs",
            )
        raise ProviderError(
            f"{what}: Replicate answered HTTP {status}: {text}",
            retryable=status >= 500 or status == 429,
        )

    # ------------------------------------------------------------------ the interface
    async def upload(self, path: Path) -> str:
        what = f"upload of {path.name} to Replicate"
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        response = await self._send(
            "POST",
            f"{self.settings.base_url}/files",
            what=what,
            files={"content": (path.name, path.read_bytes(), content_type)},
        )
        self._check(response, what)
        url = (json_body(response, what).get("urls") or {}).get("get")
        if not url:
            raise ProviderError(f"{what}: the answer has no urls.get")
        return str(url)

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
        what = f"create a prediction on {endpoint}"
        url, fields = create_route(self.settings.base_url, endpoint)
        response = await self._send(
            "POST", url, what=what, create=True, json={**fields, "input": dict(payload)}
        )
        self._check(response, what)
        prediction = json_body(response, what)
        if not prediction.get("id"):
            raise ProviderError(
                f"{what}: Replicate answered without a prediction id",
                hint="see `aivpbuild jobs`; the prediction may exist on Replicate",
            )
        pid = str(prediction["id"])
        urls = prediction.get("urls") or {}
        base = f"{self.settings.base_url}/predictions/{pid}"
        return JobHandle(
            provider=self.name,
            request_id=pid,
            endpoint=endpoint,
            urls={
                "get": str(urls.get("get") or base),
                "cancel": str(urls.get("cancel") or f"{base}/cancel"),
            },
        )

    async def _prediction(self, handle: JobHandle, what: str) -> dict[str, Any]:
        response = await self._send("GET", handle.urls["get"], what=what)
        self._check(response, what)
        return json_body(response, what)

    async def poll(self, handle: JobHandle) -> JobStatus:
        what = f"status of Replicate prediction {handle.request_id}"
        prediction = await self._prediction(handle, what)
        status = prediction.get("status")
        logs = self.new_logs(handle.request_id, str(prediction.get("logs") or "").splitlines())
        if status == "starting":
            return Queued()
        if status == "processing":
            return Running(logs=logs)
        if status == "succeeded":
            return Completed(logs=logs)
        if status in ("failed", "canceled"):
            # Replicate bills the run time: a failed run, or a cancel after it started.
            billed = status == "failed" or bool(prediction.get("started_at"))
            return Failed(
                error=str(prediction.get("error") or f"prediction {status}"),
                error_type=status,
                billed=billed,
            )
        raise ProviderError(f"{what}: unknown status {status!r}")

    async def result(self, handle: JobHandle) -> JobResult:
        what = f"result of Replicate prediction {handle.request_id}"
        prediction = await self._prediction(handle, what)
        if prediction.get("status") != "succeeded":
            raise ProviderError(
                f"{what}: the prediction is {prediction.get('status')!r}, not succeeded"
            )
        video = first_video(prediction.get("output"))
        if not video:
            raise ProviderError(
                f"{what}: the prediction has no output URL",
                hint="the model may not return a video; check the endpoint",
            )
        seed = (prediction.get("input") or {}).get("seed")
        metrics = prediction.get("metrics") or {}
        return JobResult(
            video_url=video,
            seed=seed if isinstance(seed, int) else None,
            metadata={
                "request_id": handle.request_id,
                "predict_time": metrics.get("predict_time"),
                "model": prediction.get("model"),
                "version": prediction.get("version"),
            },
        )

    async def fetch(self, result: JobResult, dest: Path) -> None:
        await self.fetch_to(result.video_url, dest, what="Replicate output")

    async def cancel(self, handle: JobHandle) -> None:
        what = f"cancel of Replicate prediction {handle.request_id}"
        response = await self._send("POST", handle.urls["cancel"], what=what)
        if response.status_code == 404:
            return  # gone already: nothing to stop
        self._check(response, what)
