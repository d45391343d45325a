"""The ComfyUI provider: a pool of servers running an API-format workflow.

The workflow JSON (a project file named by the model's ``workflow:``) holds jinja2
placeholders — ``{{ prompt }}``, ``{{ image }}``, ``{{ end_image }}``, ``{{ seed }}``,
``{{ frames }}``, ``{{ width }}``, ``{{ height }}``, ``{{ fps }}``, ``{{ duration }}`` — rendered in
the sandbox with every value written as JSON (so a prompt full of quotes cannot break the
workflow; ``"{{ prompt }}"`` and ``{{ prompt }}`` both work). Keyframes are uploaded to the
server that runs the job (``/upload/image``), then ``/prompt``; ``/history/{id}`` is polled and
the video fetched through ``/view``. A server that refuses connections is skipped for a while.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import httpx

from aivpbuild.errors import ConfigError, ProviderError, SubmitUncertain
from aivpbuild.fsutil import is_within
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
from aivpbuild.providers.http import HttpProvider, Sleep, detail, download, json_body
from aivpbuild.providers.settings import ComfyUISettings

DEAD_SECONDS = 30.0
_QUOTED = re.compile(r'"\{\{\s*(\w+)\s*\}\}"')
FILE_FIELDS = ("image", "end_image")


class ComfyUIProvider(HttpProvider):
    name: ClassVar[str] = "comfyui"
    version: ClassVar[str] = "1"
    paid: ClassVar[bool] = True   # GPU time: journaled so a crash never runs a job twice
    default_concurrency: ClassVar[int] = 1

    def __init__(self, *, settings: ComfyUISettings, root: Path, client: httpx.AsyncClient | None = None,
                 sleep: Sleep = asyncio.sleep) -> None:
        if not settings.servers:
            raise ConfigError("providers.comfyui.servers is empty", hint="list at least one ComfyUI URL")
        super().__init__(settings=settings, client=client, sleep=sleep)
        self.default_concurrency = settings.concurrency or len(settings.servers)  # type: ignore[misc]
        self.root = root
        self._load: dict[str, int] = dict.fromkeys(settings.servers, 0)
        self._dead_until: dict[str, float] = {}

    @classmethod
    def from_settings(cls, settings: ComfyUISettings | None, root: Path,
                      client: httpx.AsyncClient | None = None) -> ComfyUIProvider:
        return cls(settings=(settings or ComfyUISettings()).resolved(), root=root, client=client)

    # ------------------------------------------------------------------ the pool
    def _servers(self) -> list[str]:
        """Live servers, least loaded first (dead ones only when nothing else is left)."""
        now = time.monotonic()
        live = [s for s in self.settings.servers if self._dead_until.get(s, 0) <= now]
        return sorted(live or self.settings.servers, key=lambda s: self._load[s])

    # ------------------------------------------------------------------ the interface
    def build_input(self, request: GenerationRequest, uploaded: Mapping[Path, str]) -> dict[str, Any]:
        payload = dict(request.payload)
        for name, path in request.file_inputs.items():
            payload[name] = str(path)  # uploaded to the chosen server at submit time
        return payload

    async def submit(self, endpoint: str, payload: Mapping[str, Any]) -> JobHandle:
        errors = []
        for server in self._servers():
            self._load[server] += 1  # reserve it now: concurrent submits spread over the pool
            try:
                names = {f: await self._upload(server, Path(payload[f])) for f in FILE_FIELDS if payload.get(f)}
                workflow = self._workflow(payload, names)
                response = await self.client.post(f"{server}/prompt",
                                                   json={"prompt": workflow, "client_id": uuid.uuid4().hex})
            except httpx.ConnectError:
                self._load[server] -= 1
                self._dead_until[server] = time.monotonic() + DEAD_SECONDS
                errors.append(f"{server}: connection refused")
                continue
            except httpx.TransportError as exc:
                self._load[server] -= 1
                raise SubmitUncertain(f"ComfyUI {server}: the connection failed after the workflow was sent "
                                      f"({type(exc).__name__}); it may be running") from None
            except BaseException:
                self._load[server] -= 1
                raise
            if response.status_code >= 400:
                self._load[server] -= 1
            if response.status_code == 400:
                raise ProviderError(f"ComfyUI rejected the workflow: {self._node_errors(response)}",
                                    hint="fix the workflow JSON (export it with 'Save (API Format)')")
            if response.status_code >= 400:
                raise ProviderError(f"ComfyUI {server} answered {response.status_code}: {detail(response)}")
            prompt_id = str(json_body(response, "ComfyUI /prompt")["prompt_id"])
            return JobHandle(provider=self.name, request_id=prompt_id, endpoint=endpoint, urls={"server": server})
        raise ProviderError("no ComfyUI server could be reached: " + "; ".join(errors),
                            hint="start a server or fix providers.comfyui.servers", retryable=True)

    async def _upload(self, server: str, path: Path) -> str:
        response = await self.client.post(
            f"{server}/upload/image", files={"image": (path.name, path.read_bytes(), "image/png")},
            data={"type": "input", "overwrite": "true"})
        if response.status_code >= 400:
            raise ProviderError(f"ComfyUI upload of {path.name} failed: {response.status_code} {detail(response)}")
        body = json_body(response, "ComfyUI upload")
        return f"{body['subfolder']}/{body['name']}" if body.get("subfolder") else str(body["name"])

    def _workflow(self, payload: Mapping[str, Any], names: Mapping[str, str]) -> dict[str, Any]:
        from jinja2 import StrictUndefined
        from jinja2.exceptions import TemplateError
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        rel = str(payload.get("workflow") or "")
        path = self.root / rel
        if not rel or not is_within(self.root, path) or not path.is_file():
            raise ProviderError(f"ComfyUI workflow {rel!r} is missing or outside the project",
                                hint="set models.<name>.workflow to a project file exported in API format")
        values = {k: v for k, v in payload.items() if k not in ("workflow",)}
        values.update(names)
        for name in FILE_FIELDS:  # a text-to-video run of a workflow that can take keyframes
            values.setdefault(name, None)
        env = ImmutableSandboxedEnvironment(undefined=StrictUndefined, finalize=json.dumps, autoescape=False)
        try:
            text = env.from_string(_QUOTED.sub(r"{{ \1 }}", path.read_text("utf-8"))).render(**values)
            workflow = json.loads(text)
        except (TemplateError, ValueError, TypeError) as exc:
            raise ProviderError(f"ComfyUI workflow {rel}: {exc}",
                                hint="placeholders: prompt, image, end_image, seed, frames, width, height, fps, "
                                     "duration") from None
        if not isinstance(workflow, dict):
            raise ProviderError(f"ComfyUI workflow {rel} is not an API-format object of nodes")
        return workflow

    @staticmethod
    def _node_errors(response: httpx.Response) -> str:
        try:
            body = response.json()
        except ValueError:
            return response.text[:300]
        parts = [str((body.get("error") or {}).get("message", ""))]
        for node, info in (body.get("node_errors") or {}).items():
            messages = "; ".join(str(e.get("message", e)) for e in info.get("errors", []))
            parts.append(f"node {node} ({info.get('class_type', '?')}): {messages}")
        return " | ".join(p for p in parts if p)

    async def _get(self, url: str, what: str, **params: Any) -> httpx.Response:
        try:
            response = await self.client.get(url, params=params or None)
        except httpx.TransportError as exc:
            raise ProviderError(f"{what}: {type(exc).__name__}", retryable=True) from None
        if response.status_code >= 400:
            raise ProviderError(f"{what}: ComfyUI answered {response.status_code}")
        return response

    async def poll(self, handle: JobHandle) -> JobStatus:
        server, pid = handle.urls["server"], handle.request_id
        history = json_body(await self._get(f"{server}/history/{pid}", f"history of {pid}"), "history")
        entry = history.get(pid)
        if not entry:
            queue = json_body(await self._get(f"{server}/queue", "queue"), "queue")
            pending = [item[1] for item in queue.get("queue_pending", []) if len(item) > 1]
            return Queued(position=pending.index(pid)) if pid in pending else Running()
        status = entry.get("status") or {}
        if status.get("status_str") == "error":
            self._load[server] = max(0, self._load[server] - 1)
            messages = [m[1].get("exception_message", m[0]) for m in status.get("messages", [])
                        if isinstance(m, list) and len(m) > 1 and isinstance(m[1], dict)
                        and m[0] == "execution_error"]
            return Failed(error="; ".join(map(str, messages)) or "execution error", error_type="execution_error")
        if status.get("completed", True):
            self._load[server] = max(0, self._load[server] - 1)
            return Completed()
        return Running()

    async def result(self, handle: JobHandle) -> JobResult:
        server, pid = handle.urls["server"], handle.request_id
        history = json_body(await self._get(f"{server}/history/{pid}", f"result of {pid}"), "history")
        outputs = (history.get(pid) or {}).get("outputs") or {}
        for node in outputs.values():
            files = node.get("gifs") or (node.get("images") if node.get("animated", [False])[0] else None) or []
            for item in files:
                if str(item.get("filename", "")).lower().endswith((".mp4", ".webm", ".mov")):
                    query = httpx.QueryParams({"filename": item["filename"], "subfolder": item.get("subfolder", ""),
                                               "type": item.get("type", "output")})
                    return JobResult(video_url=f"{server}/view?{query}", seed=None,
                                     metadata={"node_outputs": len(files)})
        raise ProviderError(f"ComfyUI job {pid} finished without a video output",
                            hint="the workflow needs a video save node (VHS Video Combine or SaveVideo)")

    async def fetch(self, result: JobResult, dest: Path) -> None:
        await download(self.client, result.video_url, dest, sleep=self._sleep, what="ComfyUI output")

    async def cancel(self, handle: JobHandle) -> None:
        server = handle.urls["server"]
        try:
            await self.client.post(f"{server}/queue", json={"delete": [handle.request_id]})
            await self.client.post(f"{server}/interrupt")
        except httpx.TransportError as exc:
            raise ProviderError(f"cancel of {handle.request_id}: {type(exc).__name__}") from None
