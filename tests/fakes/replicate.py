"""A fake Replicate predictions API on 127.0.0.1, as PROVIDERS.md documents it.

Predictions go ``starting`` → ``processing`` (with logs) → ``succeeded`` by wall time since
creation; ``fail_next`` makes the next one end ``failed``. ``ledger`` lists every created
(billable) prediction. Routes (fault names): create, get, cancel, files, download.
"""

from __future__ import annotations

import threading
import time
import uuid
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

from tests.fakes.media import mp4, seconds_for, size_for
from tests.fakes.server import FakeServer, Handler, Request, Response

PROBLEM = {"Content-Type": "application/problem+json"}


class ReplicateFake(FakeServer):
    def __init__(self, token: str = "r8-test-token", *, start_seconds: float = 0.05,
                 run_seconds: float = 0.1) -> None:
        super().__init__()
        self.token = token
        self.start_seconds = start_seconds
        self.run_seconds = run_seconds
        self.base_url = f"{self.base}/v1"
        self.predictions: dict[str, dict[str, Any]] = {}
        self.created: dict[str, float] = {}
        self.ledger: list[dict[str, Any]] = []
        self.files: dict[str, bytes] = {}
        self.fail_next: list[str] = []
        self._plock = threading.Lock()

    def billable_count(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for entry in self.ledger:
            prompt = entry["input"].get("prompt")
            counts[prompt] = counts.get(prompt, 0) + 1
        return counts

    def route(self, request: Request) -> tuple[str, Handler]:
        path, method = request.path, request.method
        if path == "/v1/files" and method == "POST":
            return "files", self._upload
        if path.startswith("/files/") or path.startswith("/outputs/"):
            return "download", self._download
        if path == "/v1/predictions" and method == "POST":
            return "create", lambda r: self._create(r, None)
        if path.startswith("/v1/models/") and path.endswith("/predictions") and method == "POST":
            return "create", lambda r: self._create(r, path[len("/v1/models/"):-len("/predictions")])
        if path.startswith("/v1/predictions/"):
            rest = path[len("/v1/predictions/"):]
            if rest.endswith("/cancel") and method == "POST":
                return "cancel", lambda r: self._cancel(r, rest[: -len("/cancel")])
            return "get", lambda r: self._get(r, rest)
        return "unknown", lambda r: self._problem(404, "Not found", "Not found")

    @staticmethod
    def _problem(status: int, title: str, detail: str) -> Response:
        return Response(status, {"title": title, "detail": detail, "status": status}, dict(PROBLEM))

    def _unauthorized(self, request: Request) -> Response | None:
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return Response(401, {"title": "Unauthenticated", "detail": "You did not pass a valid authentication token",
                                  "status": 401}, dict(PROBLEM))
        return None

    def _create(self, request: Request, model: str | None) -> Response:
        if (denied := self._unauthorized(request)) is not None:
            return denied
        body = request.json() or {}
        allowed = {"input", "webhook", "webhook_events_filter", "stream"} | ({"version"} if model is None else set())
        invalid = [k for k in body if k not in allowed]
        if invalid or not isinstance(body.get("input"), dict):
            return Response(422, {"title": "Input validation failed", "status": 422,
                                  "detail": f"unknown fields: {', '.join(invalid)}" if invalid else "input is required",
                                  "invalid_fields": [{"type": "unknown", "field": k} for k in invalid]}, dict(PROBLEM))
        pid = uuid.uuid4().hex[:20]
        now = time.monotonic()
        prediction = {
            "id": pid, "model": model or "owner/model", "version": body.get("version", "hidden"),
            "input": body["input"], "logs": "", "output": None, "error": None, "status": "starting",
            "created_at": "2026-11-25T00:00:00Z", "started_at": None, "completed_at": None, "metrics": {},
            "urls": {"get": f"{self.base_url}/predictions/{pid}",
                     "cancel": f"{self.base_url}/predictions/{pid}/cancel"},
        }
        with self._plock:
            if self.fail_next:
                prediction["_fail"] = self.fail_next.pop(0)
            self.predictions[pid] = prediction
            self.created[pid] = now
            self.ledger.append({"id": pid, "model": model, "version": body.get("version"), "input": body["input"]})
        wait = request.headers.get("prefer", "")
        if wait.startswith("wait="):
            time.sleep(min(float(wait[5:]), self.start_seconds + self.run_seconds + 0.05))
        return Response(201, self._view(pid))

    def _view(self, pid: str) -> dict[str, Any]:
        with self._plock:
            prediction = self.predictions[pid]
            age = time.monotonic() - self.created[pid]
            if prediction["status"] in ("succeeded", "failed", "canceled"):
                return {k: v for k, v in prediction.items() if not k.startswith("_")}
            if age < self.start_seconds:
                prediction["status"] = "starting"
            elif age < self.start_seconds + self.run_seconds:
                prediction["status"], prediction["logs"] = "processing", "step 1/2\n"
            elif prediction.get("_fail"):
                prediction.update(status="failed", error=prediction["_fail"], logs="step 1/2\nerror\n")
            else:
                payload = prediction["input"]
                width, height = size_for(payload)
                self.files[f"{pid}.mp4"] = mp4(width, height, seconds_for(payload))
                prediction.update(status="succeeded", logs="step 1/2\nstep 2/2\n",
                                  output=[f"{self.base}/outputs/{pid}.mp4"],
                                  metrics={"predict_time": self.run_seconds})
            return {k: v for k, v in prediction.items() if not k.startswith("_")}

    def _get(self, request: Request, pid: str) -> Response:
        if (denied := self._unauthorized(request)) is not None:
            return denied
        if pid not in self.predictions:
            return Response(404, {"title": "Not found", "detail": "Prediction not found", "status": 404}, dict(PROBLEM))
        return Response(200, self._view(pid))

    def _cancel(self, request: Request, pid: str) -> Response:
        if pid not in self.predictions:
            return Response(404, {"title": "Not found", "detail": "Prediction not found", "status": 404}, dict(PROBLEM))
        with self._plock:
            if self.predictions[pid]["status"] in ("starting", "processing"):
                self.predictions[pid]["status"] = "canceled"
        return Response(200, self._view(pid))

    def _upload(self, request: Request) -> Response:
        if (denied := self._unauthorized(request)) is not None:
            return denied
        head = f"Content-Type: {request.headers['content-type']}\r\n\r\n".encode()
        message = BytesParser(policy=HTTP).parsebytes(head + request.body)
        parts = [p for p in message.iter_parts() if p.get_param("name", header="content-disposition") == "content"]
        if not parts:
            return self._problem(400, "Bad request", "missing part 'content'")
        part = parts[0]
        fid = uuid.uuid4().hex[:12]
        self.files[fid] = part.get_payload(decode=True) or b""
        return Response(201, {"id": fid, "name": part.get_filename(), "size": len(self.files[fid]),
                              "urls": {"get": f"{self.base}/files/{fid}"}})

    def _download(self, request: Request) -> Response:
        name = request.path.rsplit("/", 1)[-1]
        if name not in self.files:
            return Response(404, {"detail": "gone"})
        return Response(200, raw=self.files[name])
