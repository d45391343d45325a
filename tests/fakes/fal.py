"""A fake fal.ai (queue, REST storage and CDN) on 127.0.0.1, speaking the protocol of
PROVIDERS.md::

    with FalFake(key="k", latency=0.2) as fal:
        fal.queue_url, fal.rest_url, fal.cdn_url      # settings for the adapter
        fal.ledger                                    # accepted (billable) submissions
        fal.billable_count()                          # {prompt: count}
        fal.inject("status", status=429, retry_after=1, times=2)

URLs (one port, three prefixes): submit ``POST {queue}/{endpoint id}`` (``?fal_webhook=`` is
recorded); status ``GET {queue}/{owner}/{app}/requests/{id}/status[?logs=1]``, result
``GET .../requests/{id}``, status stream ``GET .../requests/{id}/status/stream[?logs=1]``
(server-sent events: a ``data:`` line per change, a comment every ``stream_keepalive`` s,
closed after ``COMPLETED``; a ``truncate`` fault breaks it after the first event), cancel
``PUT .../requests/{id}/cancel`` — owner/app only, shifted by one for the ``workflows/`` and
``comfy/`` namespaces: a URL with the sub-path is a 404.
Storage: ``POST {rest}/storage/auth/token?storage_type=fal-cdn-v3`` then
``POST {cdn}/files/upload`` with ``Authorization: Bearer <token>``; files (uploads and
outputs) are served at ``GET {cdn}/files/...`` without auth. Queue and REST routes want
``Authorization: Key <key>`` (401 ``{"detail"}`` otherwise).

Timing: a job waits ``queue_seconds`` (its ``queue_position`` counting down from its earlier
jobs still waiting plus ``queue_depth`` other customers'), runs ``run_seconds`` (logs grow:
"loading model", then "step k/4"), then is ``COMPLETED``; ``latency=`` sets both halves.
``runners=n`` lets at most n jobs run at once. Times are fixed when a job is accepted.

Failures: a job is failed by ``fail_next.append((error_type, message))`` or
``inject("result", completed_error="runner_disconnected")``: its status is ``COMPLETED`` with
``error``/``error_type`` and its result the matching error status (504 for ``*timeout``, 500
for ``internal_error``, else 503) with ``X-Fal-Error-Type``. Invalid input (no ``prompt``, an
image-to-video endpoint without an image, an unreadable or out-of-range ``duration``) is
accepted like fal's queue does and its result is 422 ``{"detail": [{"loc", "msg", "type"}]}``;
``validate_on_submit=True`` answers that 422 to the submit instead. Request faults: a
``status`` fault answers in fal's shape — 5xx are ingress-style (HTML, no
``x-fal-request-id``) unless ``ingress=False``, ``error_type=`` or ``timeout_type=`` make
them app-level (``x-fal-request-id``, ``X-Fal-Error-Type``, ``X-Fal-Request-Timeout-Type``).
Outputs: ``expire_after`` seconds after completion or ``expire_on_download`` after one full
download they are 404; ``output_override`` (bytes or ``input -> bytes``) or a job fault
``output=`` replaces the video. Route names for faults: submit, status, status_stream,
result, cancel, token, upload, download (and "any").
"""

from __future__ import annotations

import json
import random
import re
import secrets
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.clock import Scheduler, Timeline, queue_position
from tests.fakes.media import duration_ok, image_size, seconds_for, video_for
from tests.fakes.server import (
    BadRequestBody,
    FakeServer,
    Fault,
    Handler,
    Request,
    Response,
    file_response,
    html_error_page,
    iso,
)

NAMESPACES = ("workflows", "comfy")
IMAGE_FIELDS = ("image_url", "start_image_url", "first_frame_image")
LOG_STEPS = 4
#: How often a status stream looks for a change (seconds); it also wakes when the job starts
#: and when it completes, so completion is sent on time.
STREAM_TICK = 0.1
#: error_type -> status of the result, for app-level failures.
ERROR_STATUS = {"request_timeout": 504, "startup_timeout": 504, "internal_error": 500}
REASONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    408: "Request Timeout",
    409: "Conflict",
    422: "Unprocessable Entity",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


def owner_app(endpoint: str) -> str | None:
    """``fal-ai/bytedance/seedance/...`` -> ``fal-ai/bytedance``; a namespace shifts by one."""
    parts = [p for p in endpoint.split("/") if p]
    size = 3 if parts and parts[0] in NAMESPACES else 2
    return "/".join(parts[:size]) if len(parts) >= size else None


def missing(field_name: str) -> dict[str, Any]:
    return {"loc": ["body", field_name], "msg": "field required", "type": "value_error.missing"}


@dataclass
class CdnFile:
    data: bytes
    content_type: str
    job: Job | None = None
    downloads: int = 0


@dataclass
class Job:
    id: str
    endpoint: str
    owner_app: str
    input: dict[str, Any]
    timeline: Timeline
    seed: int
    error: tuple[str, str] | None = None  # (error_type, message)
    invalid: list[dict[str, Any]] = field(default_factory=list)
    cancelled: bool = False
    output: bytes | None = None
    files: dict[str, bytes] = field(default_factory=dict)

    @property
    def submitted(self) -> float:
        return self.timeline.accepted


class FalFake(FakeServer):
    """The fake fal.ai; see the module docstring."""

    def __init__(
        self,
        key: str = "fal-test-key",
        *,
        latency: float | None = None,
        queue_seconds: float | None = None,
        run_seconds: float | None = None,
        queue_depth: int = 2,
        runners: int | None = None,
        expire_after: float | None = None,
        expire_on_download: bool = False,
        validate_on_submit: bool = False,
        default_resolution: str = "1080p",
        max_duration: float = 60.0,
        token_ttl: float = 3600.0,
        stream_keepalive: float = 15.0,
    ) -> None:
        super().__init__()
        self.key = key
        if latency is None:
            self.queue_seconds = 0.0 if queue_seconds is None else queue_seconds
            self.run_seconds = 0.1 if run_seconds is None else run_seconds
        else:
            self.queue_seconds = latency / 2 if queue_seconds is None else queue_seconds
            self.run_seconds = (
                max(0.0, latency - self.queue_seconds) if run_seconds is None else run_seconds
            )
        self.queue_depth = queue_depth
        self.scheduler = Scheduler(runners)
        self.expire_after = expire_after
        self.expire_on_download = expire_on_download
        self.validate_on_submit = validate_on_submit
        self.default_resolution = default_resolution
        self.max_duration = max_duration
        self.token_ttl = token_ttl
        self.stream_keepalive = stream_keepalive
        self.output_override: bytes | Callable[[dict[str, Any]], bytes] | None = None
        self.jobs: dict[str, Job] = {}
        self.ledger: list[dict[str, Any]] = []
        self.uploads: dict[str, bytes] = {}
        self.files: dict[str, CdnFile] = {}
        self.tokens: dict[str, float] = {}
        self.fail_next: list[tuple[str, str]] = []
        self.queue_url = f"{self.base}/queue"
        self.rest_url = f"{self.base}/rest"
        self.cdn_url = f"{self.base}/cdn"

    @property
    def latency(self) -> float:
        return self.queue_seconds + self.run_seconds

    @latency.setter
    def latency(self, total: float) -> None:
        share = self.queue_seconds / self.latency if self.latency else 0.5
        self.queue_seconds, self.run_seconds = total * share, total * (1 - share)

    def job_routes(self) -> set[str]:
        return {"job", "result"}

    # ------------------------------------------------------------------ routing
    def route(self, request: Request) -> tuple[str, Handler]:
        path, method = request.path, request.method
        if path == "/rest/storage/auth/token" and method == "POST":
            return "token", self._token
        if path == "/cdn/files/upload" and method == "POST":
            return "upload", self._upload
        if path.startswith("/cdn/files/") and method == "GET":
            return "download", self._download
        if path.startswith("/queue/"):
            rest = path[len("/queue/") :]
            if "/requests/" in rest:
                head, tail = rest.split("/requests/", 1)
                request_id, _, action = tail.partition("/")
                if action == "status" and method == "GET":
                    return "status", lambda r: self._status(r, head, request_id)
                if action == "status/stream" and method == "GET":
                    return "status_stream", lambda r: self._status_stream(r, head, request_id)
                if action == "cancel" and method == "PUT":
                    return "cancel", lambda r: self._cancel(r, head, request_id)
                if action == "" and method == "GET":
                    return "result", lambda r: self._result(r, head, request_id)
                return "unknown", lambda r: Response(405, {"detail": "Method Not Allowed"})
            if method == "POST":
                return "submit", lambda r: self._submit(r, rest)
            return "unknown", lambda r: Response(405, {"detail": "Method Not Allowed"})
        return "unknown", lambda r: Response(404, {"detail": "Not Found"})

    def _denied(self, request: Request) -> Response | None:
        header = request.headers.get("authorization")
        if header is None:
            return Response(401, {"detail": "Missing authorization header: use 'Key <FAL_KEY>'"})
        if header != f"Key {self.key}":
            return Response(401, {"detail": "Invalid authorization: the key is not valid"})
        return None

    def bad_request(self, message: str) -> Response:
        return Response(
            422, {"detail": [{"loc": ["body"], "msg": message, "type": "value_error.jsondecode"}]}
        )

    def fault_response(self, fault: Fault, route: str, request: Request) -> Response:
        status = int(fault.status or 500)
        reason = REASONS.get(status, "Error")
        headers: dict[str, str] = {}
        app_level = (
            fault.ingress is False or fault.error_type is not None or fault.timeout_type is not None
        )
        if status >= 500 and not app_level:
            response = (
                html_error_page(status, reason)
                if fault.body is None
                else Response(status, fault.body)
            )
        elif status >= 500:
            kind = fault.error_type or {504: "request_timeout", 500: "internal_error"}.get(
                status, "runner_disconnected"
            )
            headers = {"x-fal-request-id": self._request_id_in(request), "X-Fal-Error-Type": kind}
            if fault.timeout_type:
                headers["X-Fal-Request-Timeout-Type"] = fault.timeout_type
            body = (
                fault.body
                if fault.body is not None
                else {"detail": fault.error or reason, "error_type": kind}
            )
            response = Response(status, body)
        elif status == 422:
            default = {"detail": [missing("prompt")]}
            response = Response(status, default if fault.body is None else fault.body)
        else:
            response = Response(
                status, {"detail": fault.error or reason} if fault.body is None else fault.body
            )
        response.headers.update(headers)
        response.headers.update(fault.headers)
        return response

    @staticmethod
    def _request_id_in(request: Request) -> str:
        found = re.search(r"/requests/([^/]+)", request.path)
        return found.group(1) if found else str(uuid.uuid4())

    # ------------------------------------------------------------------ validation
    def validate(self, endpoint: str, data: dict[str, Any]) -> list[dict[str, Any]]:
        """The 422 ``detail`` items for an input (empty when it is valid)."""
        problems = []
        if not str(data.get("prompt") or "").strip():
            problems.append(missing("prompt"))
        if endpoint.rstrip("/").endswith("image-to-video") and not any(
            data.get(f) for f in IMAGE_FIELDS
        ):
            problems.append(missing(next((f for f in IMAGE_FIELDS if f in endpoint), "image_url")))
        if "duration" in data:
            try:
                ok = duration_ok(seconds_for(data), self.max_duration)
            except ValueError:
                ok = False
            if not ok:
                problems.append(
                    {
                        "loc": ["body", "duration"],
                        "type": "value_error",
                        "msg": f"duration must be seconds in (0, {self.max_duration:g}], "
                        f"not {data['duration']!r}",
                    }
                )
        return problems

    # ------------------------------------------------------------------ queue
    def _submit(self, request: Request, endpoint: str) -> Response:
        if (denied := self._denied(request)) is not None:
            return denied
        app = owner_app(endpoint)
        if app is None:
            return Response(404, {"detail": f"Application '{endpoint}' not found"})
        data = request.json()
        if not isinstance(data, dict):
            return Response(
                422,
                {
                    "detail": [
                        {
                            "loc": ["body"],
                            "msg": "Input should be a valid dictionary",
                            "type": "dict_type",
                        }
                    ]
                },
            )
        problems = self.validate(endpoint, data)
        if problems and self.validate_on_submit:
            return Response(422, {"detail": problems})
        seed = data.get("seed")
        job = Job(
            uuid.uuid4().hex,
            endpoint,
            app,
            data,
            Timeline(0, 0, 0, 0),
            seed=int(seed) if isinstance(seed, int) else random.randrange(2**31),
            invalid=problems,
        )
        with self.lock:
            fault = self.take_job_fault(request)
            if fault is not None:
                if fault.completed_error:
                    job.error = (
                        fault.completed_error,
                        fault.error or fault.completed_error.replace("_", " "),
                    )
                job.output = fault.output
            elif self.fail_next:
                job.error = self.fail_next.pop(0)
            job.timeline = self.scheduler.schedule(self.queue_seconds, self.run_seconds)
            self.jobs[job.id] = job
            self.ledger.append(
                {
                    "endpoint": endpoint,
                    "request_id": job.id,
                    "input": data,
                    "time": job.timeline.wall_accepted,
                    "webhook": request.param("fal_webhook") or None,
                }
            )
            position = queue_position(self.scheduler, job.timeline, self.queue_depth)
        return Response(
            200,
            {
                "request_id": job.id,
                "status": "IN_QUEUE",
                "queue_position": position,
                **self._urls(job),
            },
        )

    def _urls(self, job: Job) -> dict[str, str]:
        base = f"{self.queue_url}/{job.owner_app}/requests/{job.id}"
        return {
            "response_url": base,
            "status_url": f"{base}/status",
            "cancel_url": f"{base}/cancel",
        }

    def _job(self, request: Request, head: str, request_id: str) -> Job | Response:
        if (denied := self._denied(request)) is not None:
            return denied
        with self.lock:
            job = self.jobs.get(request_id)
        if job is None:
            return Response(404, {"detail": f"Request {request_id} not found"})
        if job.owner_app != head:  # a sub-path in the URL, or another app
            return Response(404, {"detail": "Not Found"})
        return job

    def _logs(self, job: Job, now: float) -> list[dict[str, Any]]:
        timeline = job.timeline
        logs = [
            {
                "message": "loading model",
                "level": "INFO",
                "source": "user",
                "timestamp": iso(timeline.wall(timeline.starts)),
            }
        ]
        done = int(timeline.progress(now) * LOG_STEPS)
        for step in range(1, done + 1):
            moment = timeline.starts + (timeline.ends - timeline.starts) * step / LOG_STEPS
            logs.append(
                {
                    "message": f"step {step}/{LOG_STEPS}",
                    "level": "INFO",
                    "source": "user",
                    "timestamp": iso(timeline.wall(moment)),
                }
            )
        return logs

    def _status(self, request: Request, head: str, request_id: str) -> Response:
        job = self._job(request, head, request_id)
        if isinstance(job, Response):
            return job
        want_logs = request.param("logs") in ("1", "true", "True")
        code, body = self._status_body(job, want_logs, time.monotonic())
        return Response(code, body)

    def _status_body(self, job: Job, want_logs: bool, now: float) -> tuple[int, dict[str, Any]]:
        """The status answer at ``now``: 202 while queued or running, 200 once completed."""
        base = {"request_id": job.id, **self._urls(job)}
        with self.lock:
            phase = job.timeline.phase(now)
            if phase == "queued":
                position = queue_position(self.scheduler, job.timeline, self.queue_depth, now)
                return 202, {"status": "IN_QUEUE", "queue_position": position, **base}
        logs = self._logs(job, now) if want_logs else None
        if phase == "running":
            return 202, {"status": "IN_PROGRESS", "logs": logs, **base}
        body: dict[str, Any] = {
            "status": "COMPLETED",
            "logs": logs,
            **base,
            "metrics": {"inference_time": round(job.timeline.ends - job.timeline.starts, 3)},
        }
        if job.cancelled:
            body.update(error="Request was cancelled", error_type="request_cancelled")
        elif job.error:
            body.update(error=job.error[1], error_type=job.error[0])
        return 200, body

    def _status_stream(self, request: Request, head: str, request_id: str) -> Response:
        """``GET .../status/stream``: server-sent events, one ``data:`` line per change of the
        status object, a comment line every ``stream_keepalive`` seconds, closed after the
        ``COMPLETED`` event."""
        job = self._job(request, head, request_id)
        if isinstance(job, Response):
            return job
        want_logs = request.param("logs") in ("1", "true", "True")

        def events() -> Iterator[bytes]:
            last: dict[str, Any] | None = None
            quiet_since = time.monotonic()
            while not self._stopping.is_set():
                now = time.monotonic()
                _, body = self._status_body(job, want_logs, now)
                if body != last:
                    last, quiet_since = body, now
                    yield b"data: " + json.dumps(body).encode() + b"\n\n"
                    if body["status"] == "COMPLETED":
                        return
                elif now - quiet_since >= self.stream_keepalive:
                    quiet_since = now
                    yield b": keep-alive\n\n"
                upcoming = [t - now for t in (job.timeline.starts, job.timeline.ends) if t > now]
                self.sleep(min([STREAM_TICK, *upcoming]) + 0.001)

        headers = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        return Response(200, headers=headers, stream=events())

    def _result(self, request: Request, head: str, request_id: str) -> Response:
        job = self._job(request, head, request_id)
        if isinstance(job, Response):
            return job
        if job.timeline.phase() != "done":
            return Response(400, {"detail": "Request is still in progress"})
        headers = {"x-fal-request-id": job.id}
        if job.cancelled:
            return Response(
                400, {"detail": "Request was cancelled", "error_type": "request_cancelled"}, headers
            )
        if job.error:
            kind, message = job.error
            status = ERROR_STATUS.get(kind, 504 if kind.endswith("timeout") else 503)
            return Response(
                status,
                {"detail": message, "error_type": kind},
                {**headers, "X-Fal-Error-Type": kind},
            )
        if job.invalid:
            return Response(422, {"detail": job.invalid}, headers)
        data = self._video(job)
        name = "output.mp4"
        path = f"files/{job.id}/{name}"
        with self.lock:
            if path not in self.files:
                self.files[path] = CdnFile(data, "video/mp4", job)
                job.files[name] = data
        return Response(
            200,
            {
                "video": {
                    "url": f"{self.cdn_url}/{path}",
                    "content_type": "video/mp4",
                    "file_name": name,
                    "file_size": len(data),
                },
                "seed": job.seed,
            },
            headers,
        )

    def _video(self, job: Job) -> bytes:
        if job.output is not None:
            return job.output
        override = self.output_override
        if override is not None:
            return override if isinstance(override, bytes) else override(job.input)
        size = None
        for name in IMAGE_FIELDS:
            url = str(job.input.get(name) or "")
            if url.startswith(f"{self.cdn_url}/") and (
                upload := self.files.get(url[len(self.cdn_url) + 1 :])
            ):
                size = image_size(upload.data)
                break
        return video_for(job.input, default_resolution=self.default_resolution, image_size=size)

    def _cancel(self, request: Request, head: str, request_id: str) -> Response:
        if (denied := self._denied(request)) is not None:
            return denied
        with self.lock:
            job = self.jobs.get(request_id)
            if job is None or job.owner_app != head:
                return Response(404, {"status": "NOT_FOUND"})
            if job.timeline.phase() == "done":
                return Response(400, {"status": "ALREADY_COMPLETED"})
            job.cancelled = True
            job.timeline.end_now()
        return Response(202, {"status": "CANCELLATION_REQUESTED"})

    # ------------------------------------------------------------------ storage and CDN
    def _token(self, request: Request) -> Response:
        if (denied := self._denied(request)) is not None:
            return denied
        if not request.param("storage_type"):
            return Response(
                422,
                {
                    "detail": [
                        {
                            "loc": ["query", "storage_type"],
                            "msg": "field required",
                            "type": "value_error.missing",
                        }
                    ]
                },
            )
        body = request.json()
        if body is not None and not isinstance(body, dict):
            raise BadRequestBody("the body must be a JSON object")
        token = secrets.token_urlsafe(24)
        with self.lock:
            self.tokens[token] = time.monotonic() + self.token_ttl
        return Response(
            200,
            {
                "token": token,
                "token_type": "Bearer",
                "base_url": self.cdn_url,
                "expires_at": iso(time.time() + self.token_ttl),
            },
        )

    def _upload(self, request: Request) -> Response:
        kind, _, token = request.headers.get("authorization", "").partition(" ")
        with self.lock:
            expires = self.tokens.get(token) if kind == "Bearer" else None
        if expires is None or expires < time.monotonic():
            return Response(401, {"detail": "Invalid or expired storage token"})
        if not request.body:
            return Response(400, {"detail": "Empty file"})
        name = re.sub(r"[^\w.-]", "_", request.headers.get("x-fal-file-name") or "file") or "file"
        path = f"files/{uuid.uuid4().hex[:12]}/{name}"
        content_type = request.headers.get("content-type") or "application/octet-stream"
        with self.lock:
            self.files[path] = CdnFile(request.body, content_type)
            self.uploads[path] = request.body
        return Response(200, {"access_url": f"{self.cdn_url}/{path}"})

    def _download(self, request: Request) -> Response:
        path = request.path[len("/cdn/") :]
        with self.lock:
            item = self.files.get(path)
        if item is None or self._expired(item):
            return Response(404, {"detail": "File not found"})

        def sent() -> None:
            with self.lock:
                item.downloads += 1

        return file_response(request, item.data, item.content_type, sent)

    def _expired(self, item: CdnFile) -> bool:
        if item.job is None:
            return False
        if self.expire_on_download and item.downloads > 0:
            return True
        finished = item.job.timeline.ends
        return self.expire_after is not None and time.monotonic() - finished > self.expire_after
