"""A fake ComfyUI server on 127.0.0.1 (every route also under /api), as PROVIDERS.md describes.

A queued prompt runs for ``run_seconds`` after the previous one (one at a time, like ComfyUI),
then its history shows the outputs of its video node: ``gifs`` for ``VHS_VideoCombine``,
``images`` with ``animated: [true]`` for ``SaveVideo``. The video's size, frame count and rate
come from the workflow's inputs (``width``, ``height``, ``frames``/``length``, ``frame_rate``).
A node of class ``BrokenNode`` makes ``/prompt`` answer 400 with node_errors; ``fail_next``
makes a prompt end with an execution error. ``ledger`` lists accepted prompts.
"""

from __future__ import annotations

import threading
import time
import uuid
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

from tests.fakes.media import mp4
from tests.fakes.server import FakeServer, Handler, Request, Response


class ComfyUIFake(FakeServer):
    def __init__(self, *, run_seconds: float = 0.1) -> None:
        super().__init__()
        self.run_seconds = run_seconds
        self.ledger: list[dict[str, Any]] = []
        self.uploads: dict[str, bytes] = {}
        self.outputs: dict[str, bytes] = {}
        self.fail_next = 0
        self._queue: list[tuple[str, float, dict[str, Any], bool]] = []  # id, done_at, workflow, fails
        self._qlock = threading.Lock()

    def route(self, request: Request) -> tuple[str, Handler]:
        path = request.path[4:] if request.path.startswith("/api/") else request.path
        method = request.method
        if path == "/prompt" and method == "POST":
            return "prompt", self._prompt
        if path.startswith("/history/"):
            return "history", lambda r: self._history(path[len("/history/"):])
        if path == "/view":
            return "view", self._view
        if path == "/upload/image" and method == "POST":
            return "upload", self._upload
        if path == "/queue":
            return "queue", self._queue_route
        if path == "/interrupt" and method == "POST":
            return "interrupt", lambda r: Response(200, {})
        return "unknown", lambda r: Response(404, {"error": "not found"})

    def _prompt(self, request: Request) -> Response:
        body = request.json() or {}
        workflow = body.get("prompt")
        if not isinstance(workflow, dict) or not workflow:
            return Response(400, {"error": {"type": "invalid_prompt", "message": "Cannot execute because the prompt "
                                            "is empty", "details": ""}, "node_errors": {}})
        errors = {node: {"errors": [{"type": "invalid", "message": "Node class does not exist: BrokenNode",
                                     "details": ""}], "class_type": spec.get("class_type")}
                  for node, spec in workflow.items() if spec.get("class_type") == "BrokenNode"}
        if errors:
            return Response(400, {"error": {"type": "prompt_outputs_failed_validation",
                                            "message": "Prompt outputs failed validation", "details": ""},
                                  "node_errors": errors})
        pid = str(uuid.uuid4())
        with self._qlock:
            start = max([time.monotonic(), *(q[1] for q in self._queue)])
            fails = self.fail_next > 0
            self.fail_next -= int(fails)
            self._queue.append((pid, start + self.run_seconds, workflow, fails))
            self.ledger.append({"prompt_id": pid, "workflow": workflow})
            number = len(self.ledger)
        return Response(200, {"prompt_id": pid, "number": number, "node_errors": {}})

    def _history(self, pid: str) -> Response:
        with self._qlock:
            job = next((q for q in self._queue if q[0] == pid), None)
        if job is None or time.monotonic() < job[1]:
            return Response(200, {})
        _, _, workflow, fails = job
        if fails:
            return Response(200, {pid: {"outputs": {}, "status": {"status_str": "error", "completed": False,
                                        "messages": [["execution_error", {"node_id": "3", "exception_message":
                                                                          "CUDA out of memory"}]]}}})
        outputs: dict[str, Any] = {}
        for node, spec in workflow.items():
            kind = spec.get("class_type")
            if kind in ("VHS_VideoCombine", "SaveVideo"):
                values = {k: v for s in workflow.values() for k, v in s.get("inputs", {}).items()}
                fps = float(values.get("frame_rate") or values.get("fps") or 24)
                frames = int(values.get("frames") or values.get("length") or 24)
                name = f"{pid}.mp4"
                if name not in self.outputs:
                    self.outputs[name] = mp4(int(values.get("width", 512)), int(values.get("height", 288)),
                                             frames / fps, fps=round(fps))
                item = {"filename": name, "subfolder": "", "type": "output", "format": "video/h264-mp4"}
                video = {"images": [item], "animated": [True]}
                outputs[node] = {"gifs": [item]} if kind == "VHS_VideoCombine" else video
        return Response(200, {pid: {"outputs": outputs, "status": {"status_str": "success", "completed": True,
                                                                   "messages": []}}})

    def _view(self, request: Request) -> Response:
        name = (request.query.get("filename") or [""])[0]
        data = self.outputs.get(name) or self.uploads.get(name)
        return Response(200, raw=data) if data is not None else Response(404, {"error": "not found"})

    def _upload(self, request: Request) -> Response:
        head = f"Content-Type: {request.headers['content-type']}\r\n\r\n".encode()
        message = BytesParser(policy=HTTP).parsebytes(head + request.body)
        parts = {p.get_param("name", header="content-disposition"): p for p in message.iter_parts()}
        if "image" not in parts:
            return Response(400, {"error": "no image"})
        name = parts["image"].get_filename() or "upload.png"
        self.uploads[name] = parts["image"].get_payload(decode=True) or b""
        return Response(200, {"name": name, "subfolder": "", "type": "input"})

    def _queue_route(self, request: Request) -> Response:
        now = time.monotonic()
        with self._qlock:
            if request.method == "POST":
                deleted = set((request.json() or {}).get("delete", []))
                self._queue = [q for q in self._queue if q[0] not in deleted]
                return Response(200, {})
            waiting = [q for q in self._queue if q[1] > now]
        running = [[0, waiting[0][0], {}, {}, []]] if waiting else []
        pending = [[i + 1, q[0], {}, {}, []] for i, q in enumerate(waiting[1:])]
        return Response(200, {"queue_running": running, "queue_pending": pending})
