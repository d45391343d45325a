"""A fake fal.ai (queue, REST storage and CDN) on 127.0.0.1, speaking the documented protocol.

    with FalFake(key="k") as fal:
        fal.queue_url, fal.rest_url          # settings for the adapter
        fal.ledger                           # every accepted (billable) submission
        fal.inject("status", status=429, headers={"Retry-After": "0"})   # faults

Jobs move IN_QUEUE (position counting down) → IN_PROGRESS (with logs) → COMPLETED by wall
time since submission (``queue_seconds``, ``run_seconds``), computed on each poll.
``fail_next`` makes the next accepted job end ``COMPLETED`` with an error; ``expire_after``
makes outputs 404 once that many seconds have passed since completion.
Routes (names for faults): submit, status, result, cancel, token, upload, download.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.media import mp4, seconds_for, size_for
from tests.fakes.server import FakeServer, Handler, Request, Response


@dataclass
class Job:
    id: str
    endpoint: str
    owner_app: str
    input: dict[str, Any]
    submitted: float
    error: tuple[str, str] | None = None
    cancelled: bool = False
    seed: int = 0
    files: dict[str, bytes] = field(default_factory=dict)


class FalFake(FakeServer):
    def __init__(self, key: str = "fal-test-key", *, queue_seconds: float = 0.0, run_seconds: float = 0.1,
                 expire_after: float | None = None) -> None:
        super().__init__()
        self.key = key
        self.queue_seconds = queue_seconds
        self.run_seconds = run_seconds
        self.expire_after = expire_after
        self.jobs: dict[str, Job] = {}
        self.ledger: list[dict[str, Any]] = []
        self.uploads: dict[str, bytes] = {}
        self.fail_next: list[tuple[str, str]] = []
        self._jobs_lock = threading.Lock()
        self.queue_url = f"{self.base}/queue"
        self.rest_url = f"{self.base}/rest"
        self.cdn_url = f"{self.base}/cdn"

    def billable_count(self, key: Any = None) -> dict[Any, int]:
        """Accepted submissions per ``key(entry)`` (default: per prompt)."""
        counts: dict[Any, int] = {}
        for entry in self.ledger:
            k = key(entry) if key else entry["input"].get("prompt")
            counts[k] = counts.get(k, 0) + 1
        return counts

    # ------------------------------------------------------------------ routing
    def route(self, request: Request) -> tuple[str, Handler]:
        path, method = request.path, request.method
        if path.startswith("/rest/storage/auth/token"):
            return "token", self._token
        if path == "/cdn/files/upload":
            return "upload", self._upload
        if path.startswith("/cdn/files/"):
            return "download", self._download
        if path.startswith("/queue/"):
            rest = path[len("/queue/"):]
            if "/requests/" in rest:
                _head, tail = rest.split("/requests/", 1)
                if tail.endswith("/status"):
                    return "status", lambda r: self._status(r, tail[: -len("/status")])
                if tail.endswith("/cancel") and method == "PUT":
                    return "cancel", lambda r: self._cancel(r, tail[: -len("/cancel")])
                return "result", lambda r: self._result(r, tail)
            if method == "POST":
                return "submit", lambda r: self._submit(r, rest)
        return "unknown", lambda r: Response(404, {"detail": "Not Found"})

    def _authorized(self, request: Request) -> bool:
        return request.headers.get("authorization") == f"Key {self.key}"

    @staticmethod
    def _unauthorized() -> Response:
        return Response(401, {"detail": "Unauthorized: invalid or missing key"})

    # ------------------------------------------------------------------ queue
    def _submit(self, request: Request, endpoint: str) -> Response:
        if not self._authorized(request):
            return self._unauthorized()
        data = request.json() or {}
        if not isinstance(data, dict) or not data.get("prompt"):
            return Response(422, {"detail": [{"loc": ["body", "prompt"], "msg": "field required",
                                              "type": "value_error.missing"}]})
        parts = endpoint.split("/")
        owner_app = "/".join(parts[:3] if parts[0] in ("workflows", "comfy") else parts[:2])
        job = Job(uuid.uuid4().hex, endpoint, owner_app, data, time.monotonic(),
                  seed=int(data.get("seed", 1234)))
        with self._jobs_lock:
            if self.fail_next:
                job.error = self.fail_next.pop(0)
            position = sum(1 for j in self.jobs.values() if self._state(j) == "IN_QUEUE")
            self.jobs[job.id] = job
            self.ledger.append({"endpoint": endpoint, "request_id": job.id, "input": data,
                                "time": time.time()})
        base = f"{self.queue_url}/{owner_app}/requests/{job.id}"
        return Response(200, {"request_id": job.id, "status": "IN_QUEUE", "queue_position": position,
                              "response_url": base, "status_url": f"{base}/status",
                              "cancel_url": f"{base}/cancel"})

    def _state(self, job: Job) -> str:
        age = time.monotonic() - job.submitted
        if job.cancelled or age >= self.queue_seconds + self.run_seconds:
            return "COMPLETED"
        return "IN_QUEUE" if age < self.queue_seconds else "IN_PROGRESS"

    def _job(self, request_id: str) -> Job | None:
        with self._jobs_lock:
            return self.jobs.get(request_id)

    def _status(self, request: Request, request_id: str) -> Response:
        if not self._authorized(request):
            return self._unauthorized()
        job = self._job(request_id)
        if job is None:
            return Response(404, {"detail": "Request not found"})
        state = self._state(job)
        logs = [{"message": "loading model", "level": "INFO", "source": "user", "timestamp": "t"}]
        if state == "IN_QUEUE":
            remaining = self.queue_seconds - (time.monotonic() - job.submitted)
            return Response(202, {"status": "IN_QUEUE",
                                  "queue_position": max(0, int(remaining / max(self.queue_seconds, 1e-9) * 3))})
        if state == "IN_PROGRESS":
            return Response(202, {"status": "IN_PROGRESS", "logs": logs})
        body: dict[str, Any] = {"status": "COMPLETED", "logs": [*logs, {"message": "done"}],
                                "metrics": {"inference_time": self.run_seconds}}
        if job.cancelled:
            body.update(error="Request was cancelled", error_type="request_cancelled")
        elif job.error:
            body.update(error=job.error[1], error_type=job.error[0])
        return Response(200, body)

    def _result(self, request: Request, request_id: str) -> Response:
        if not self._authorized(request):
            return self._unauthorized()
        job = self._job(request_id)
        if job is None:
            return Response(404, {"detail": "Request not found"})
        if self._state(job) != "COMPLETED":
            return Response(400, {"detail": "Request is still in progress"})
        if job.error:
            kind = job.error[0]
            status = 504 if "timeout" in kind else 503
            return Response(status, {"detail": job.error[1], "error_type": kind},
                            {"X-Fal-Error-Type": kind, "x-fal-request-id": job.id})
        width, height = size_for(job.input)
        data = mp4(width, height, seconds_for(job.input), bool(job.input.get("generate_audio")))
        name = f"{job.id}.mp4"
        with self._jobs_lock:
            job.files[name] = data
        return Response(200, {"video": {"url": f"{self.cdn_url}/files/{name}", "content_type": "video/mp4",
                                        "file_name": name, "file_size": len(data)}, "seed": job.seed})

    def _cancel(self, request: Request, request_id: str) -> Response:
        job = self._job(request_id)
        if job is None:
            return Response(404, {"status": "NOT_FOUND"})
        if self._state(job) == "COMPLETED":
            return Response(400, {"status": "ALREADY_COMPLETED"})
        job.cancelled = True
        return Response(202, {"status": "CANCELLATION_REQUESTED"})

    # ------------------------------------------------------------------ storage and CDN
    def _token(self, request: Request) -> Response:
        if not self._authorized(request):
            return self._unauthorized()
        return Response(200, {"token": "cdn-token", "token_type": "Bearer", "base_url": self.cdn_url,
                              "expires_at": "2099-01-01T00:00:00Z"})

    def _upload(self, request: Request) -> Response:
        if request.headers.get("authorization") != "Bearer cdn-token":
            return Response(401, {"detail": "bad storage token"})
        name = f"up-{uuid.uuid4().hex[:8]}-{request.headers.get('x-fal-file-name', 'file')}"
        self.uploads[name] = request.body
        return Response(200, {"access_url": f"{self.cdn_url}/files/{name}"})

    def _download(self, request: Request) -> Response:
        name = request.path.rsplit("/", 1)[-1]
        if name in self.uploads:
            return Response(200, raw=self.uploads[name], headers={"Content-Type": "image/png"})
        with self._jobs_lock:
            job = next((j for j in self.jobs.values() if name in j.files), None)
        if job is None:
            return Response(404, {"detail": "File not found"})
        finished = job.submitted + self.queue_seconds + self.run_seconds
        if self.expire_after is not None and time.monotonic() - finished > self.expire_after:
            return Response(404, {"detail": "File expired"})
        return Response(200, raw=job.files[name])
