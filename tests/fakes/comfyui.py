"""A fake ComfyUI server on 127.0.0.1 (every route also under ``/api``), as PROVIDERS.md
describes it; several make a pool, and one can be stopped to play a dead server::

    with comfyui_pool(2, run_seconds=0.1) as (one, two):
        one.base, two.base               # server URLs for the adapter
        one.stop()                       # dead: connections are refused from now on

Routes: ``POST /prompt`` ``{"prompt": {node_id: {"class_type", "inputs"}}, "client_id"}`` ->
``{"prompt_id", "number", "node_errors": {}}`` (a client-chosen ``prompt_id`` is kept), or
400 ``{"error": {"type", "message", "details", "extra_info"}, "node_errors": {...}}`` for a
prompt that is missing, has a node without ``class_type``, no output node, or a node whose
class is in ``broken_classes`` (node_errors); ``GET /history/{id}`` (``{}`` until done),
``GET /history``, ``POST /history`` (delete/clear); ``GET /view?filename=&subfolder=&type=``;
``POST /upload/image`` (multipart ``image``, ``type``, ``subfolder``, ``overwrite``; a name
taken by other bytes becomes ``name (1).png`` unless overwriting); ``GET /queue``,
``POST /queue`` (delete/clear pending); ``POST /interrupt`` (optionally ``{"prompt_id"}``);
``GET /system_stats``. No auth; no websocket.

Prompts run one at a time, ``run_seconds`` each, in submission order (state is computed from
the clock on each request). A finished prompt's history holds the outputs of its save nodes:
``gifs`` for ``VHS_VideoCombine``, ``images`` + ``animated: [true]`` for ``SaveVideo``/
``SaveWEBM``/``SaveAnimatedWEBP``, ``images`` (a PNG) for ``SaveImage``. The video's size,
frame count and rate come from the workflow's inputs (``width``/``height``,
``length``/``frames``/``num_frames``/``video_length``, ``frame_rate``/``fps``). A failed prompt
(``fail_next += 1`` or ``inject("history", completed_error="CUDA out of memory")``) ends with
``status_str: "error"`` and an ``execution_error`` message; an interrupted one with
``execution_interrupted``. Route names for faults: prompt, history, view, upload, queue,
interrupt, system_stats (and "any").
"""

from __future__ import annotations

import contextlib
import io
import mimetypes
import posixpath
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.media import encode
from tests.fakes.server import (
    BadRequestBody,
    FakeServer,
    Fault,
    Handler,
    Request,
    Response,
    file_response,
)

VIDEO_NODES = {
    "VHS_VideoCombine": "gifs",
    "SaveVideo": "images",
    "SaveWEBM": "images",
    "SaveAnimatedWEBP": "images",
    "SaveAnimatedPNG": "images",
}
OUTPUT_NODES = {*VIDEO_NODES, "SaveImage", "PreviewImage"}
FRAME_INPUTS = ("length", "frames", "num_frames", "video_length")
RATE_INPUTS = ("frame_rate", "fps")


def prompt_error(
    kind: str, message: str, details: str = "", node_errors: dict[str, Any] | None = None
) -> Response:
    error = {"type": kind, "message": message, "details": details, "extra_info": {}}
    return Response(400, {"error": error, "node_errors": node_errors or {}})


@dataclass
class OutputFile:
    """A file a prompt wrote, made when it is first viewed (``spec``) or given (``data``)."""

    spec: tuple[int, int, int, int] | None  # width, height, frames, fps of a video
    data: bytes | None = None


@dataclass
class Prompt:
    id: str
    number: int
    workflow: dict[str, Any]
    client_id: str | None
    extra_data: dict[str, Any]
    accepted: float
    run_seconds: float
    error: str | None = None
    output: bytes | None = None
    starts: float = 0.0
    ends: float = 0.0
    interrupted: bool = False
    outputs_to_execute: list[str] = field(default_factory=list)

    def row(self) -> list[Any]:
        """The form ``/queue`` and ``history.prompt`` list it in."""
        return [self.number, self.id, self.workflow, self.extra_data, self.outputs_to_execute]


def _scalar(workflow: dict[str, Any], names: tuple[str, ...]) -> float | None:
    for node in workflow.values():
        inputs = node.get("inputs") if isinstance(node, dict) else None
        for name in names:
            value = (inputs or {}).get(name)
            if isinstance(value, int | float | str) and not isinstance(value, bool):
                with contextlib.suppress(ValueError):
                    return float(value)
    return None


class ComfyUIFake(FakeServer):
    """One fake ComfyUI server; see the module docstring."""

    def __init__(
        self,
        *,
        run_seconds: float = 0.1,
        latency: float | None = None,
        broken_classes: frozenset[str] = frozenset({"BrokenNode"}),
        default_size: tuple[int, int] = (512, 288),
    ) -> None:
        super().__init__()
        self.run_seconds = run_seconds if latency is None else latency
        self.broken_classes = set(broken_classes)
        self.default_size = default_size
        self.output_override: bytes | Callable[[dict[str, Any]], bytes] | None = None
        self.ledger: list[dict[str, Any]] = []
        self.uploads: dict[str, bytes] = {}
        self.outputs: dict[str, bytes] = {}
        self.fail_next = 0
        self._files: dict[tuple[str, str, str], OutputFile] = {}
        self._pending: list[Prompt] = []
        self._running: Prompt | None = None
        self._last_end = 0.0
        self._history: dict[str, dict[str, Any]] = {}
        self._counter = 0
        self._number = 0

    def billing_key(self, entry: dict[str, Any]) -> Any:
        """A ledger entry's default key for :meth:`billable_count`: the first ``text`` input."""
        return next(
            (
                n["inputs"]["text"]
                for n in entry["workflow"].values()
                if isinstance(n, dict) and isinstance(n.get("inputs"), dict) and "text" in n["inputs"]
            ),
            None,
        )

    def job_routes(self) -> set[str]:
        return {"job", "history"}

    # ------------------------------------------------------------------ routing
    def route(self, request: Request) -> tuple[str, Handler]:
        path = request.path[4:] if request.path.startswith("/api/") else request.path
        method = request.method
        if path == "/prompt" and method == "POST":
            return "prompt", self._prompt
        if path == "/prompt" and method == "GET":
            return "queue", lambda r: Response(
                200, {"exec_info": {"queue_remaining": self._remaining()}}
            )
        if path.startswith("/history/") and method == "GET":
            return "history", lambda r: self._history_of(path[len("/history/") :])
        if path == "/history":
            return "history", self._history_all if method == "GET" else self._history_edit
        if path == "/view" and method == "GET":
            return "view", self._view
        if path == "/upload/image" and method == "POST":
            return "upload", self._upload
        if path == "/queue":
            return "queue", self._queue_get if method == "GET" else self._queue_edit
        if path == "/interrupt" and method == "POST":
            return "interrupt", self._interrupt
        if path == "/system_stats" and method == "GET":
            return "system_stats", self._system_stats
        return "unknown", lambda r: Response(
            404, raw=b"404: Not Found", headers={"Content-Type": "text/plain"}
        )

    def bad_request(self, message: str) -> Response:
        return prompt_error("invalid_prompt", message)

    def fault_response(self, fault: Fault, route: str, request: Request) -> Response:
        status = int(fault.status or 500)
        if fault.body is not None:
            response = Response(status, fault.body)
        elif status == 400 and route == "prompt":
            workflow: dict[str, Any] = {}
            with contextlib.suppress(BadRequestBody, AttributeError):
                workflow = (request.json() or {}).get("prompt") or {}
            node = next(iter(workflow), "1")
            kind = workflow.get(node, {}).get("class_type", "CheckpointLoaderSimple")
            errors = {
                node: {
                    "errors": [
                        {
                            "type": "value_not_in_list",
                            "message": "Value not in list",
                            "details": fault.error or "ckpt_name: 'missing.safetensors' not in []",
                            "extra_info": {},
                        }
                    ],
                    "dependent_outputs": [],
                    "class_type": kind,
                }
            }
            response = prompt_error(
                "prompt_outputs_failed_validation",
                "Prompt outputs failed validation",
                node_errors=errors,
            )
        elif status >= 500:
            response = Response(
                status,
                raw=b"500 Internal Server Error\n\nServer got itself in trouble",
                headers={"Content-Type": "text/plain"},
            )
        else:
            response = Response(
                status,
                raw=(fault.error or f"{status}").encode(),
                headers={"Content-Type": "text/plain"},
            )
        response.headers.update(fault.headers)
        return response

    # ------------------------------------------------------------------ the queue
    def _advance(self, now: float) -> None:
        """Run the queue up to ``now``: finish what is done, start the next (under lock)."""
        while True:
            if self._running is None:
                if not self._pending:
                    return
                prompt = self._pending.pop(0)
                prompt.starts = max(prompt.accepted, self._last_end)
                prompt.ends = prompt.starts + prompt.run_seconds
                self._running = prompt
            if self._running.ends > now:
                return
            self._finish(self._running)
            self._last_end = self._running.ends
            self._running = None

    def _remaining(self) -> int:
        with self.lock:
            self._advance(time.monotonic())
            return len(self._pending) + (self._running is not None)

    def _prompt(self, request: Request) -> Response:
        body = request.json()
        workflow = body.get("prompt") if isinstance(body, dict) else None
        if not isinstance(workflow, dict) or not workflow:
            return prompt_error("no_prompt", "No prompt provided", "No prompt provided")
        for node, spec in workflow.items():
            if not isinstance(spec, dict) or "class_type" not in spec:
                return prompt_error(
                    "invalid_prompt",
                    "Cannot execute because a node is missing the class_type property.",
                    f"Node ID '#{node}'",
                )
        errors = {
            node: {
                "errors": [
                    {
                        "type": "invalid",
                        "message": f"Node class does not exist: {spec['class_type']}",
                        "details": "",
                        "extra_info": {},
                    }
                ],
                "dependent_outputs": [],
                "class_type": spec["class_type"],
            }
            for node, spec in workflow.items()
            if spec["class_type"] in self.broken_classes
        }
        if errors:
            return prompt_error(
                "prompt_outputs_failed_validation",
                "Prompt outputs failed validation",
                node_errors=errors,
            )
        outputs = [node for node, spec in workflow.items() if spec["class_type"] in OUTPUT_NODES]
        if not outputs:
            return prompt_error("prompt_no_outputs", "Prompt has no outputs")
        assert isinstance(body, dict)
        pid = str(body.get("prompt_id") or uuid.uuid4())
        now = time.monotonic()
        with self.lock:
            self._advance(now)
            self._number += 1
            prompt = Prompt(
                pid,
                self._number,
                workflow,
                body.get("client_id"),
                dict(body.get("extra_data") or {}),
                now,
                self.run_seconds,
                outputs_to_execute=outputs,
            )
            if body.get("client_id"):
                prompt.extra_data.setdefault("client_id", body["client_id"])
            fault = self.take_job_fault(request)
            if fault is not None:
                prompt.error = fault.completed_error or fault.error
                prompt.output = fault.output
            elif self.fail_next > 0:
                self.fail_next -= 1
                prompt.error = "CUDA out of memory. Tried to allocate 2.00 GiB"
            self._pending.append(prompt)
            self._advance(now)
            self.ledger.append(
                {
                    "prompt_id": pid,
                    "number": prompt.number,
                    "workflow": workflow,
                    "client_id": prompt.client_id,
                    "time": time.time(),
                }
            )
        return Response(200, {"prompt_id": pid, "number": prompt.number, "node_errors": {}})

    def _finish(self, prompt: Prompt) -> None:
        """Write a finished prompt's history entry (under lock)."""
        stamp = int((time.time() - (time.monotonic() - prompt.ends)) * 1000)
        messages: list[list[Any]] = [
            ["execution_start", {"prompt_id": prompt.id, "timestamp": stamp}],
            ["execution_cached", {"nodes": [], "prompt_id": prompt.id, "timestamp": stamp}],
        ]
        outputs: dict[str, Any] = {}
        if prompt.interrupted or prompt.error:
            node = next(iter(prompt.workflow))
            info = {
                "prompt_id": prompt.id,
                "node_id": node,
                "node_type": prompt.workflow[node]["class_type"],
                "executed": [],
                "timestamp": stamp,
            }
            if prompt.interrupted:
                messages.append(["execution_interrupted", info])
            else:
                messages.append(
                    [
                        "execution_error",
                        {
                            **info,
                            "exception_message": prompt.error,
                            "exception_type": "torch.OutOfMemoryError",
                            "traceback": [],
                            "current_inputs": {},
                            "current_outputs": {},
                        },
                    ]
                )
            status = {"status_str": "error", "completed": False, "messages": messages}
        else:
            for node in prompt.outputs_to_execute:
                outputs[node] = self._write_outputs(prompt, node)
            messages.append(["execution_success", {"prompt_id": prompt.id, "timestamp": stamp}])
            status = {"status_str": "success", "completed": True, "messages": messages}
        meta = {
            node: {"node_id": node, "display_node": node, "parent_node": None, "real_node_id": node}
            for node in outputs
        }
        self._history[prompt.id] = {
            "prompt": prompt.row(),
            "outputs": outputs,
            "status": status,
            "meta": meta,
        }

    def _write_outputs(self, prompt: Prompt, node: str) -> dict[str, Any]:
        kind = prompt.workflow[node]["class_type"]
        inputs = prompt.workflow[node].get("inputs") or {}
        default_prefix = "AnimateDiff" if kind == "VHS_VideoCombine" else "ComfyUI"
        prefix = str(inputs.get("filename_prefix") or default_prefix)
        subfolder, base = posixpath.split(prefix)
        self._counter += 1
        width = int(_scalar(prompt.workflow, ("width",)) or self.default_size[0])
        height = int(_scalar(prompt.workflow, ("height",)) or self.default_size[1])
        if kind not in VIDEO_NODES:
            name = f"{base}_{self._counter:05d}_.png"
            self._files[("output", subfolder, name)] = OutputFile(None, _png(width, height))
            return {"images": [{"filename": name, "subfolder": subfolder, "type": "output"}]}
        fps = _scalar(prompt.workflow, RATE_INPUTS) or 24.0
        frames = int(_scalar(prompt.workflow, FRAME_INPUTS) or 24)
        name = (
            f"{base}_{self._counter:05d}.mp4"
            if kind == "VHS_VideoCombine"
            else f"{base}_{self._counter:05d}_.mp4"
        )
        data = prompt.output
        if data is None and self.output_override is not None:
            override = self.output_override
            data = override if isinstance(override, bytes) else override(prompt.workflow)
        self._files[("output", subfolder, name)] = OutputFile(
            (width, height, frames, round(fps)), data
        )
        item: dict[str, Any] = {"filename": name, "subfolder": subfolder, "type": "output"}
        if kind == "VHS_VideoCombine":
            return {"gifs": [{**item, "format": "video/h264-mp4", "frame_rate": fps}]}
        return {"images": [item], "animated": [True]}

    # ------------------------------------------------------------------ history and queue
    def _history_of(self, pid: str) -> Response:
        with self.lock:
            self._advance(time.monotonic())
            entry = self._history.get(pid)
        return Response(200, {pid: entry} if entry is not None else {})

    def _history_all(self, request: Request) -> Response:
        with self.lock:
            self._advance(time.monotonic())
            items = list(self._history.items())
        limit = request.param("max_items")
        if limit.isdigit():
            items = items[-int(limit) :]
        return Response(200, dict(items))

    def _history_edit(self, request: Request) -> Response:
        body = request.json() or {}
        with self.lock:
            if body.get("clear"):
                self._history.clear()
            for pid in body.get("delete") or []:
                self._history.pop(str(pid), None)
        return Response(200, raw=b"", headers={"Content-Type": "text/plain"})

    def _queue_get(self, request: Request) -> Response:
        with self.lock:
            self._advance(time.monotonic())
            running = [self._running.row()] if self._running else []
            pending = [p.row() for p in self._pending]
        return Response(200, {"queue_running": running, "queue_pending": pending})

    def _queue_edit(self, request: Request) -> Response:
        body = request.json() or {}
        with self.lock:
            self._advance(time.monotonic())
            if body.get("clear"):
                self._pending.clear()
            deleted = {str(pid) for pid in body.get("delete") or []}
            self._pending = [p for p in self._pending if p.id not in deleted]
        return Response(200, raw=b"", headers={"Content-Type": "text/plain"})

    def _interrupt(self, request: Request) -> Response:
        body = request.json() or {}
        now = time.monotonic()
        with self.lock:
            self._advance(now)
            running = self._running
            wanted = body.get("prompt_id") if isinstance(body, dict) else None
            if running is not None and (not wanted or wanted == running.id):
                running.interrupted = True
                running.ends = now
                self._advance(now)
        return Response(200, raw=b"", headers={"Content-Type": "text/plain"})

    def _system_stats(self, request: Request) -> Response:
        return Response(
            200,
            {
                "system": {
                    "os": "posix",
                    "ram_total": 2**36,
                    "ram_free": 2**35,
                    "comfyui_version": "0.3.0",
                    "python_version": "3.11",
                    "pytorch_version": "2.5.0",
                    "embedded_python": False,
                    "argv": ["main.py"],
                },
                "devices": [
                    {
                        "name": "cuda:0 fake GPU",
                        "type": "cuda",
                        "index": 0,
                        "vram_total": 2**34,
                        "vram_free": 2**33,
                        "torch_vram_total": 0,
                        "torch_vram_free": 0,
                    }
                ],
            },
        )

    # ------------------------------------------------------------------ files
    def _view(self, request: Request) -> Response:
        name, subfolder, kind = (
            request.param("filename"),
            request.param("subfolder"),
            request.param("type", "output"),
        )
        if (
            not name
            or ".." in name
            or ".." in subfolder
            or name.startswith("/")
            or subfolder.startswith("/")
        ):
            return Response(400, raw=b"400: Bad Request", headers={"Content-Type": "text/plain"})
        if kind not in ("output", "input", "temp"):
            return Response(400, raw=b"400: Bad Request", headers={"Content-Type": "text/plain"})
        with self.lock:
            item = self._files.get((kind, subfolder, name))
        if item is None:
            return Response(404, raw=b"404: Not Found", headers={"Content-Type": "text/plain"})
        if item.data is None and item.spec is not None:
            item.data = encode(*item.spec)
        data = item.data or b""
        if kind == "output":
            with self.lock:
                self.outputs[posixpath.join(subfolder, name)] = data
        content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
        return file_response(request, data, content_type)

    def _upload(self, request: Request) -> Response:
        parts = request.form()
        if "image" not in parts:
            return Response(400, raw=b"400: Bad Request", headers={"Content-Type": "text/plain"})
        part = parts["image"]
        data = part.get_payload(decode=True)
        data = data if isinstance(data, bytes) else b""

        def text(field_name: str, default: str) -> str:
            value = parts[field_name].get_payload(decode=True) if field_name in parts else None
            return value.decode().strip() if isinstance(value, bytes) else default

        kind = text("type", "input") or "input"
        subfolder = text("subfolder", "").strip("/")
        overwrite = text("overwrite", "false").lower() in ("true", "1")
        name = posixpath.basename(part.get_filename() or "upload.png") or "upload.png"
        if ".." in subfolder or kind not in ("input", "temp", "output"):
            return Response(400, raw=b"400: Bad Request", headers={"Content-Type": "text/plain"})
        with self.lock:
            stem, ext = posixpath.splitext(name)
            counter = 1
            while (
                not overwrite and (existing := self._files.get((kind, subfolder, name))) is not None
            ):
                if existing.data == data:
                    break  # the same bytes: ComfyUI reuses the name
                name = f"{stem} ({counter}){ext}"
                counter += 1
            self._files[(kind, subfolder, name)] = OutputFile(None, data)
            self.uploads[posixpath.join(subfolder, name)] = data
        return Response(200, {"name": name, "subfolder": subfolder, "type": kind})


def _png(width: int, height: int) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (90, 120, 160)).save(buffer, format="PNG")
    return buffer.getvalue()


@contextlib.contextmanager
def comfyui_pool(size: int, **options: Any) -> Iterator[list[ComfyUIFake]]:
    """``size`` ComfyUI fakes, started, stopped at the end (stop one to make it dead)."""
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(ComfyUIFake(**options)) for _ in range(size)]
