"""A fake Replicate predictions API on 127.0.0.1, as PROVIDERS.md documents it::

    with ReplicateFake(token="r8_x") as rep:
        rep.base_url                     # the API base (".../v1"), a setting for the adapter
        rep.ledger, rep.billable_count()
        rep.inject("create", status=429, retry_after=2)

Routes (``Authorization: Bearer <token>`` on every ``/v1`` route, 401 otherwise): create
``POST /v1/models/{owner}/{name}/predictions`` (``{"input"}``) or ``POST /v1/predictions``
(``{"version", "input"}``) -> 201 prediction, ``Prefer: wait[=N]`` holding the answer up to N
(1-60) seconds; poll ``GET /v1/predictions/{id}``; cancel ``POST /v1/predictions/{id}/cancel``
-> 200; upload ``POST /v1/files`` (multipart part ``content``) -> 201 ``{"id", "urls":
{"get"}, ...}``, with ``GET /v1/files/{id}`` (metadata) and ``/v1/files/{id}/download``. A
file's ``urls.get`` and a prediction's output are served without auth, like signed URLs.

Errors are ``application/problem+json`` ``{"title", "detail", "status"}``; 422 adds
``invalid_fields`` — for unknown top-level fields, a missing/invalid ``input`` or
``version``, an input without ``prompt`` or with a bad ``duration``. 429 says "Request was
throttled. Your rate limit resets in ~Ns." (with ``Retry-After`` when ``retry_after`` is
given, or from the built-in limit ``create_limit_per_minute``).

A prediction is ``starting`` for ``start_seconds``, ``processing`` for ``run_seconds``
(logs "step 1/2", then "step 2/2"), then ``succeeded`` with ``output`` a list of one URL
(``output_list=False``: the URL itself) — or ``failed`` with ``error`` when
``fail_next.append(message)`` or ``inject("get", completed_error=message)`` hit it, or
``canceled``. ``expire_after`` seconds after completion its data is removed
(``data_removed: true``, output 404), ``expire_on_download`` after one full download.
Route names for faults: create, get, cancel, files, file, download (and "any").
"""

from __future__ import annotations

import collections
import hashlib
import math
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.clock import Scheduler, Timeline
from tests.fakes.media import duration_ok, seconds_for, video_for
from tests.fakes.server import (
    FakeServer,
    Fault,
    Handler,
    Request,
    Response,
    file_response,
    html_error_page,
    iso,
)

PROBLEM = "application/problem+json"
ALLOWED_FIELDS = {"input", "webhook", "webhook_events_filter", "stream", "webhook_completed"}
VERSION = re.compile(r"^(?:[\w.-]+/[\w.-]+(?::[0-9a-f]{64})?|[0-9a-f]{64})$")
REASONS = {
    400: "Bad Request",
    401: "Unauthenticated",
    404: "Not found",
    409: "Conflict",
    422: "Input validation failed",
    429: "Request was throttled",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}
LOGS = ("step 1/2\n", "step 2/2\n")


def problem(status: int, detail: str, title: str | None = None, **extra: Any) -> Response:
    body = {
        "title": title or REASONS.get(status, "Error"),
        "detail": detail,
        "status": status,
        **extra,
    }
    return Response(status, body, {"Content-Type": PROBLEM})


def invalid(items: list[tuple[str, str, str]]) -> Response:
    """A 422 listing ``(field, type, description)`` like Replicate's schema validation."""
    detail = "".join(f"- {f}: {d}\n" for f, _t, d in items)
    fields = [{"type": t, "field": f, "description": d} for f, t, d in items]
    return problem(422, detail, invalid_fields=fields)


def throttled(seconds: float) -> str:
    return f"Request was throttled. Your rate limit resets in ~{max(1, math.ceil(seconds))}s."


def prediction_id() -> str:
    alphabet = "abcdefghijklmnopqrstuvwxyz234567"
    return "".join(secrets.choice(alphabet) for _ in range(26))


@dataclass
class Prediction:
    id: str
    model: str
    version: str
    input: dict[str, Any]
    timeline: Timeline
    error: str | None = None
    output: bytes | None = None
    canceled: bool = False
    downloads: int = 0
    data: bytes | None = field(default=None, repr=False)


class ReplicateFake(FakeServer):
    """The fake Replicate API; see the module docstring."""

    def __init__(
        self,
        token: str = "r8-test-token",
        *,
        latency: float | None = None,
        start_seconds: float | None = None,
        run_seconds: float | None = None,
        runners: int | None = None,
        output_list: bool = True,
        expire_after: float | None = None,
        expire_on_download: bool = False,
        create_limit_per_minute: int | None = None,
        default_resolution: str = "1080p",
        max_duration: float = 60.0,
    ) -> None:
        super().__init__()
        self.token = token
        if latency is None:
            self.start_seconds = 0.05 if start_seconds is None else start_seconds
            self.run_seconds = 0.1 if run_seconds is None else run_seconds
        else:
            self.start_seconds = latency / 2 if start_seconds is None else start_seconds
            self.run_seconds = (
                max(0.0, latency - self.start_seconds) if run_seconds is None else run_seconds
            )
        self.scheduler = Scheduler(runners)
        self.output_list = output_list
        self.expire_after = expire_after
        self.expire_on_download = expire_on_download
        self.create_limit_per_minute = create_limit_per_minute
        self.default_resolution = default_resolution
        self.max_duration = max_duration
        self.output_override: bytes | Callable[[dict[str, Any]], bytes] | None = None
        self.base_url = f"{self.base}/v1"
        self.predictions: dict[str, Prediction] = {}
        self.ledger: list[dict[str, Any]] = []
        self.files: dict[str, dict[str, Any]] = {}
        self.file_data: dict[str, bytes] = {}
        self.fail_next: list[str] = []
        self._creates: collections.deque[float] = collections.deque()

    def job_routes(self) -> set[str]:
        return {"job", "get"}

    # ------------------------------------------------------------------ routing
    def route(self, request: Request) -> tuple[str, Handler]:
        path, method = request.path.rstrip("/"), request.method
        routes: list[tuple[str, str, str, Callable[..., Response]]] = [
            ("POST", r"/v1/files", "files", self._upload),
            ("GET", r"/v1/files/([\w-]+)", "file", lambda r, f: self._file(r, f, False)),
            ("GET", r"/v1/files/([\w-]+)/download", "file", lambda r, f: self._file(r, f, True)),
            ("GET", r"/files/([\w-]+)", "download", self._served_file),
            ("GET", r"/delivery/([\w-]+)/output\.mp4", "download", self._output),
            ("POST", r"/v1/predictions", "create", lambda r: self._create(r, None)),
            ("POST", r"/v1/models/([^/]+/[^/]+)/predictions", "create", self._create),
            ("POST", r"/v1/predictions/(\w+)/cancel", "cancel", self._cancel),
            ("GET", r"/v1/predictions/(\w+)", "get", self._get),
        ]
        for verb, pattern, name, handler in routes:
            found = re.fullmatch(pattern, path)
            if found and method == verb:
                args = found.groups()
                return name, lambda r, h=handler, a=args: h(r, *a)
        return "unknown", lambda r: problem(404, "The requested resource could not be found.")

    def _denied(self, request: Request) -> Response | None:
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return problem(401, "You did not pass a valid authentication token")
        return None

    def bad_request(self, message: str) -> Response:
        return problem(400, message)

    def fault_response(self, fault: Fault, route: str, request: Request) -> Response:
        status = int(fault.status or 500)
        if fault.body is not None:
            response = Response(status, fault.body, {"Content-Type": PROBLEM})
        elif status == 429:
            response = problem(
                429, throttled(fault.retry_after if fault.retry_after is not None else 30)
            )
        elif status == 422:
            response = invalid([("input", "required", "prompt is required")])
        elif status >= 500 and fault.ingress:
            response = html_error_page(status, REASONS.get(status, "Error"))
        else:
            response = problem(status, fault.error or REASONS.get(status, "Error"))
        response.headers.update(fault.headers)
        return response

    # ------------------------------------------------------------------ predictions
    def _throttle(self) -> Response | None:
        limit = self.create_limit_per_minute
        if not limit:
            return None
        now = time.monotonic()
        with self.lock:
            while self._creates and now - self._creates[0] >= 60:
                self._creates.popleft()
            if len(self._creates) >= limit:
                wait = 60 - (now - self._creates[0])
                response = problem(429, throttled(wait))
                response.headers["Retry-After"] = str(max(1, math.ceil(wait)))
                return response
            self._creates.append(now)
        return None

    def validate(self, data: dict[str, Any], model: str | None) -> list[tuple[str, str, str]]:
        """``(field, type, description)`` for each problem of a create body."""
        problems = []
        allowed = ALLOWED_FIELDS | ({"version"} if model is None else set())
        for name in data:
            if name not in allowed:
                problems.append(
                    (
                        "(root)",
                        "additional_property_not_allowed",
                        f"Additional property {name} is not allowed",
                    )
                )
        if model is None:
            version = data.get("version")
            if not version:
                problems.append(("(root)", "required", "version is required"))
            elif not isinstance(version, str) or not VERSION.match(version):
                problems.append(
                    ("version", "invalid", f"Invalid version or not permitted: {version!r}")
                )
        inputs = data.get("input")
        if inputs is None:
            problems.append(("(root)", "required", "input is required"))
        elif not isinstance(inputs, dict):
            problems.append(("input", "invalid_type", "Invalid type. Expected: object"))
        else:
            if not str(inputs.get("prompt") or "").strip():
                problems.append(("input", "required", "prompt is required"))
            if "duration" in inputs:
                try:
                    ok = duration_ok(seconds_for(inputs), self.max_duration)
                except ValueError:
                    ok = False
                if not ok:
                    problems.append(
                        (
                            "input.duration",
                            "number_out_of_range",
                            f"Must be a number of seconds in (0, {self.max_duration:g}]",
                        )
                    )
        return problems

    def _create(self, request: Request, model: str | None) -> Response:
        if (denied := self._denied(request)) is not None:
            return denied
        if (refused := self._throttle()) is not None:
            return refused
        data = request.json()
        if not isinstance(data, dict):
            return problem(400, "The request body must be a JSON object")
        if problems := self.validate(data, model):
            return invalid(problems)
        version = str(data.get("version") or "")
        if model is None:
            name, _, hash_part = version.rpartition(":") if ":" in version else ("", "", version)
            model_name = name or (version if "/" in version else "fake/video-model")
            version_id = hash_part if re.fullmatch(r"[0-9a-f]{64}", hash_part) else "hidden"
        else:
            model_name, version_id = model, "hidden"
        pid = prediction_id()
        with self.lock:
            prediction = Prediction(
                pid,
                model_name,
                version_id,
                data["input"],
                self.scheduler.schedule(self.start_seconds, self.run_seconds),
            )
            fault = self.take_job_fault(request)
            if fault is not None:
                prediction.error = fault.completed_error or fault.error
                prediction.output = fault.output
            elif self.fail_next:
                prediction.error = self.fail_next.pop(0)
            self.predictions[pid] = prediction
            self.ledger.append(
                {
                    "id": pid,
                    "request_id": pid,
                    "model": model,
                    "version": data.get("version"),
                    "input": data["input"],
                    "time": prediction.timeline.wall_accepted,
                }
            )
        wait = self._prefer_wait(request)
        if wait:
            self.sleep(min(wait, prediction.timeline.ends - time.monotonic()))
        return Response(201, self._view(prediction))

    @staticmethod
    def _prefer_wait(request: Request) -> float:
        match = re.search(r"\bwait(?:=(\d+))?", request.headers.get("prefer", ""))
        if not match:
            return 0.0
        return float(min(60, max(1, int(match.group(1) or 60))))

    def _state(self, prediction: Prediction, now: float) -> str:
        if prediction.canceled:
            return "canceled"
        phase = prediction.timeline.phase(now)
        if phase == "queued":
            return "starting"
        if phase == "running":
            return "processing"
        return "failed" if prediction.error else "succeeded"

    def _expired(self, prediction: Prediction, now: float) -> bool:
        if prediction.timeline.phase(now) != "done":
            return False
        if self.expire_on_download and prediction.downloads > 0:
            return True
        return self.expire_after is not None and now - prediction.timeline.ends > self.expire_after

    def _view(self, prediction: Prediction) -> dict[str, Any]:
        now = time.monotonic()
        timeline = prediction.timeline
        state = self._state(prediction, now)
        logs = ""
        if state != "starting":
            steps = (
                2 if state in ("succeeded", "failed") else 1 + int(timeline.progress(now) >= 0.5)
            )
            logs = "".join(LOGS[:steps])
        if state == "failed":
            logs += f"Traceback (most recent call last):\nRuntimeError: {prediction.error}\n"
        removed = self._expired(prediction, now)
        output: Any = None
        metrics: dict[str, Any] = {}
        if state == "succeeded":
            url = f"{self.base}/delivery/{prediction.id}/output.mp4"
            output = None if removed else ([url] if self.output_list else url)
            metrics = {
                "predict_time": round(timeline.ends - timeline.starts, 3),
                "total_time": round(timeline.ends - timeline.accepted, 3),
            }
        base = f"{self.base_url}/predictions/{prediction.id}"
        started = timeline.starts if state != "starting" else None
        finished = state in ("succeeded", "failed", "canceled")
        return {
            "id": prediction.id,
            "model": prediction.model,
            "version": prediction.version,
            "input": {} if removed else prediction.input,
            "logs": logs,
            "output": output,
            "data_removed": removed,
            "error": prediction.error if state == "failed" else None,
            "status": state,
            "source": "api",
            "created_at": iso(timeline.wall_accepted),
            "started_at": iso(timeline.wall(started)) if started is not None else None,
            "completed_at": iso(timeline.wall(timeline.ends)) if finished else None,
            "metrics": metrics,
            "urls": {"get": base, "cancel": f"{base}/cancel"},
        }

    def _find(self, request: Request, pid: str) -> Prediction | Response:
        if (denied := self._denied(request)) is not None:
            return denied
        with self.lock:
            prediction = self.predictions.get(pid)
        return prediction if prediction is not None else problem(404, "Prediction not found")

    def _get(self, request: Request, pid: str) -> Response:
        found = self._find(request, pid)
        return found if isinstance(found, Response) else Response(200, self._view(found))

    def _cancel(self, request: Request, pid: str) -> Response:
        found = self._find(request, pid)
        if isinstance(found, Response):
            return found
        with self.lock:
            if self._state(found, time.monotonic()) in ("starting", "processing"):
                found.canceled = True
                found.timeline.end_now()
        return Response(200, self._view(found))

    def _output(self, request: Request, pid: str) -> Response:
        with self.lock:
            prediction = self.predictions.get(pid)
        now = time.monotonic()
        if (
            prediction is None
            or self._state(prediction, now) != "succeeded"
            or self._expired(prediction, now)
        ):
            return problem(404, "The requested file could not be found.")
        data = self._video(prediction)

        def sent() -> None:
            with self.lock:
                prediction.downloads += 1

        return file_response(request, data, "video/mp4", sent)

    def _video(self, prediction: Prediction) -> bytes:
        if prediction.data is None:
            override = self.output_override
            if prediction.output is not None:
                prediction.data = prediction.output
            elif override is not None:
                prediction.data = (
                    override if isinstance(override, bytes) else override(prediction.input)
                )
            else:
                prediction.data = video_for(
                    prediction.input, default_resolution=self.default_resolution
                )
        return prediction.data

    # ------------------------------------------------------------------ files
    def _upload(self, request: Request) -> Response:
        if (denied := self._denied(request)) is not None:
            return denied
        parts = request.form()
        if "content" not in parts:
            return problem(400, "Missing required multipart field 'content'")
        part = parts["content"]
        data = part.get_payload(decode=True)
        data = data if isinstance(data, bytes) else b""
        fid = secrets.token_hex(12)
        now = time.time()
        meta = {
            "id": fid,
            "name": part.get_filename() or "file",
            "content_type": part.get_content_type(),
            "size": len(data),
            "etag": hashlib.md5(data).hexdigest(),
            "checksums": {
                "sha256": hashlib.sha256(data).hexdigest(),
                "md5": hashlib.md5(data).hexdigest(),
            },
            "metadata": {},
            "created_at": iso(now),
            "expires_at": iso(now + 24 * 3600),
            "urls": {"get": f"{self.base}/files/{fid}"},
        }
        with self.lock:
            self.files[fid] = meta
            self.file_data[fid] = data
        return Response(201, meta)

    def _file(self, request: Request, fid: str, download: bool) -> Response:
        if (denied := self._denied(request)) is not None:
            return denied
        with self.lock:
            meta, data = self.files.get(fid), self.file_data.get(fid)
        if meta is None or data is None:
            return problem(404, "File not found")
        return (
            file_response(request, data, str(meta["content_type"]))
            if download
            else Response(200, meta)
        )

    def _served_file(self, request: Request, fid: str) -> Response:
        with self.lock:
            meta, data = self.files.get(fid), self.file_data.get(fid)
        if meta is None or data is None:
            return problem(404, "File not found")
        return file_response(request, data, str(meta["content_type"]))
