"""The ComfyUI provider: a pool of servers running an API-format workflow.

The workflow JSON (a project file named by the model's ``workflow:``) holds jinja2
placeholders — ``{{ prompt }}``, ``{{ image }}``, ``{{ end_image }}``, ``{{ seed }}``,
``{{ frames }}``, ``{{ width }}``, ``{{ height }}``, ``{{ fps }}``, ``{{ duration }}`` — rendered
in jinja2's sandbox with StrictUndefined. Every value is written as JSON, so a prompt full of
quotes cannot break the workflow: ``"{{ seed }}"`` and ``{{ seed }}`` both give the number
``9``, and ``"a shot of {{ prompt }}"`` escapes the prompt inside the string.

Each job goes to the least-loaded live server. Keyframes are uploaded to that server
(``/upload/image``, under a content-addressed name so two keyframes called ``start.png``
never overwrite each other), then ``POST /prompt``; ``/history/{id}`` is polled (``{}`` while
running, ``/queue`` for the position) and the video fetched through ``/view``. A server that
refuses connections is skipped for :data:`DEAD_SECONDS`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import mimetypes
import time
import uuid
from collections.abc import Callable, Mapping
from fractions import Fraction
from pathlib import Path, PurePath
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
from aivpbuild.providers.http import (
    DEFAULT_POLICY,
    NOT_SENT,
    UNCERTAIN_HINT,
    HttpProvider,
    RetryPolicy,
    Sleep,
    detail,
    json_body,
    send,
)
from aivpbuild.providers.settings import ComfyUISettings
from aivpbuild.providers.wire import Answer

DEAD_SECONDS = 30.0
PLACEHOLDERS = (
    "prompt",
    "image",
    "end_image",
    "seed",
    "frames",
    "width",
    "height",
    "fps",
    "duration",
)
FILE_PLACEHOLDERS = ("image", "end_image")
VIDEO_SUFFIXES = (".mp4", ".webm", ".mov", ".mkv", ".m4v")
#: Class types (substrings) of nodes that save a video: their outputs are the result.
VIDEO_SAVE_NODES = ("VideoCombine", "SaveVideo", "SaveAnimated", "SaveWEBM")
PLACEHOLDER_HINT = "placeholders: " + ", ".join(PLACEHOLDERS)
API_FORMAT_HINT = "in ComfyUI enable the dev mode options and use 'Save (API Format)'"


# ---------------------------------------------------------------------------- the workflow
def prepare_template(text: str) -> str:
    """Rewrite each ``{{ expr }}`` of a JSON template so its value is written as JSON: a whole
    string ``"{{ x }}"`` or a bare ``{{ x }}`` becomes the JSON value, and a placeholder inside
    a longer string becomes the escaped text. ``{% %}`` and ``{# #}`` blocks pass through."""
    out: list[str] = []
    i, n = 0, len(text)
    in_string, opened_at = False, -1
    while i < n:
        if text.startswith("{{", i):
            end = text.find("}}", i + 2)
            if end < 0:  # unclosed: leave it for jinja to report with a line number
                out.append(text[i:])
                break
            expr = text[i + 2 : end]
            expr = expr[1:] if expr.startswith("-") else expr
            expr = (expr[:-1] if expr.endswith("-") else expr).strip()
            after = end + 2
            if in_string and opened_at == i - 1 and text.startswith('"', after):
                out.pop()  # the opening quote: the whole string is this one value
                out.append(f"{{{{ ({expr}) | aivp_json }}}}")
                in_string, i = False, after + 1
            elif in_string:
                out.append(f"{{{{ ({expr}) | aivp_in_string }}}}")
                i = after
            else:
                out.append(f"{{{{ ({expr}) | aivp_json }}}}")
                i = after
        elif text.startswith(("{%", "{#"), i):
            end = text.find("%}" if text[i + 1] == "%" else "#}", i + 2)
            stop = n if end < 0 else end + 2
            out.append(text[i:stop])
            i = stop
        else:
            char = text[i]
            if in_string and char == "\\":
                out.append(text[i : i + 2])
                i += 2
                continue
            if char == '"':
                in_string = not in_string
                opened_at = i if in_string else -1
            out.append(char)
            i += 1
    return "".join(out)


def _plain(value: Any) -> Any:
    """JSON for the few non-JSON types a payload holds; an undefined value raises."""
    from jinja2 import Undefined

    if isinstance(value, Undefined):
        str(value)  # StrictUndefined raises UndefinedError naming the placeholder
    if isinstance(value, Fraction):
        return float(value)
    if isinstance(value, PurePath):
        return str(value)
    raise TypeError(f"a {type(value).__name__} cannot be written into a workflow")


def _as_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=_plain)


def _in_string(value: Any) -> str:
    if value is None:
        text = ""
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, Fraction):
        text = str(float(value))
    else:
        text = value if isinstance(value, str) else str(value)
    return json.dumps(text, ensure_ascii=False)[1:-1]


def render_workflow(text: str, values: Mapping[str, Any], *, source: str) -> dict[str, Any]:
    """Fill the placeholders of an API-format workflow template and parse it."""
    from jinja2 import StrictUndefined, TemplateSyntaxError
    from jinja2.exceptions import TemplateError
    from jinja2.sandbox import SandboxedEnvironment

    env = SandboxedEnvironment(
        undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True
    )
    env.filters["aivp_json"] = _as_json
    env.filters["aivp_in_string"] = _in_string
    try:
        rendered = env.from_string(prepare_template(text)).render(**values)
    except TemplateSyntaxError as exc:
        raise ProviderError(
            f"ComfyUI workflow {source}, line {exc.lineno}: {exc.message}", hint=PLACEHOLDER_HINT
        ) from None
    except TemplateError as exc:
        missing = (
            (" (the clip sets no such value: give it one, e.g. seed: in the clip or its defaults)")
            if "undefined" in str(exc)
            else ""
        )
        raise ProviderError(
            f"ComfyUI workflow {source}: {exc}{missing}", hint=PLACEHOLDER_HINT
        ) from None
    except TypeError as exc:
        raise ProviderError(f"ComfyUI workflow {source}: {exc}", hint=PLACEHOLDER_HINT) from None
    try:
        workflow = json.loads(rendered)
    except ValueError as exc:
        raise ProviderError(
            f"ComfyUI workflow {source} is not valid JSON once filled in: {exc}",
            hint="export it with 'Save (API Format)'; write placeholders as whole values "
            '("{{ seed }}") or inside strings',
        ) from None
    check_api_format(workflow, source)
    return dict(workflow)


def check_api_format(workflow: Any, source: str) -> None:
    """An API-format workflow is ``{node_id: {"class_type", "inputs"}}``."""
    if isinstance(workflow, dict) and isinstance(workflow.get("nodes"), list):
        raise ProviderError(
            f"ComfyUI workflow {source} is in the UI format, not the API format",
            hint=API_FORMAT_HINT,
        )
    if not isinstance(workflow, dict) or not workflow:
        raise ProviderError(
            f"ComfyUI workflow {source} is not an object of nodes", hint=API_FORMAT_HINT
        )
    for node_id, node in workflow.items():
        if (
            not isinstance(node, dict)
            or not isinstance(node.get("class_type"), str)
            or not isinstance(node.get("inputs", {}), dict)
        ):
            raise ProviderError(
                f"ComfyUI workflow {source}: node {node_id} has no class_type/inputs",
                hint=API_FORMAT_HINT,
            )


def video_nodes(workflow: Mapping[str, Any]) -> list[str]:
    """Ids of the nodes that save a video, in workflow order."""
    return [
        str(node_id)
        for node_id, node in workflow.items()
        if any(kind in str(node.get("class_type", "")) for kind in VIDEO_SAVE_NODES)
    ]


def node_errors(response: Answer) -> str:
    """A 400 from ``/prompt`` as ``message | node 7 (BrokenNode): message; ...``."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:300]
    if not isinstance(body, dict):
        return str(body)[:300]
    error = body.get("error")
    parts = [str(error.get("message", "")) if isinstance(error, dict) else str(error or "")]
    for node, info in (body.get("node_errors") or {}).items():
        info = info if isinstance(info, dict) else {}
        texts = []
        for err in info.get("errors", []):
            if isinstance(err, dict):
                texts.append(" ".join(str(err[k]) for k in ("message", "details") if err.get(k)))
            else:
                texts.append(str(err))
        parts.append(f"node {node} ({info.get('class_type', '?')}): {'; '.join(texts)}")
    return " | ".join(p for p in parts if p)


def execution_error(status: Mapping[str, Any]) -> tuple[str, str]:
    """The error text and kind from a history entry's ``status.messages``."""
    for message in status.get("messages") or []:
        if not (isinstance(message, list) and len(message) > 1 and isinstance(message[1], dict)):
            continue
        kind, data = message[0], message[1]
        if kind == "execution_error":
            where = f"node {data.get('node_id', '?')}"
            if data.get("node_type"):
                where += f" ({data['node_type']})"
            text = data.get("exception_message") or data.get("exception_type") or "execution error"
            return f"{where}: {str(text).strip()}", "execution_error"
        if kind == "execution_interrupted":
            return "the job was interrupted on the server", "interrupted"
    return "execution error", "execution_error"


def pick_output(
    outputs: Mapping[str, Any], preferred: list[str]
) -> tuple[str, dict[str, Any]] | None:
    """The video file among a job's outputs: ``gifs`` (VideoHelperSuite), ``images`` with
    ``animated: [true]`` (core SaveVideo) or ``videos``; the workflow's save nodes first."""
    order = [n for n in preferred if n in outputs] + [n for n in outputs if n not in preferred]
    fallback: tuple[str, dict[str, Any]] | None = None
    for node_id in order:
        node = outputs[node_id]
        if not isinstance(node, dict):
            continue
        items = list(node.get("gifs") or []) + list(node.get("videos") or [])
        if any(node.get("animated") or []):
            items += list(node.get("images") or [])
        for item in items:
            if not isinstance(item, dict) or not item.get("filename"):
                continue
            if str(item["filename"]).lower().endswith(VIDEO_SUFFIXES):
                return node_id, item
            fallback = fallback or (node_id, item)
    return fallback


def upload_name(path: Path, data: bytes) -> str:
    """A content-addressed name: the same file always gets it, two different files never."""
    return f"{path.stem}-{hashlib.sha256(data).hexdigest()[:12]}{path.suffix.lower()}"


# ---------------------------------------------------------------------------- the provider
def _server_retryable(response: Answer) -> bool:
    return response.status_code in (502, 503, 504)


class ComfyUIProvider(HttpProvider):
    """A pool of ComfyUI servers (no auth)."""

    name: ClassVar[str] = "comfyui"
    version: ClassVar[str] = "1"
    paid: ClassVar[bool] = True  # GPU time: journaled so a crash never runs a job twice
    default_concurrency: ClassVar[int] = 1

    def __init__(
        self,
        *,
        settings: ComfyUISettings,
        root: Path,
        client: httpx.AsyncClient | None = None,
        sleep: Sleep = asyncio.sleep,
        policy: RetryPolicy = DEFAULT_POLICY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not settings.servers:
            raise ConfigError(
                "providers.comfyui.servers is empty", hint="list at least one ComfyUI URL"
            )
        super().__init__(settings=settings, client=client, sleep=sleep, policy=policy)
        self.default_concurrency = settings.concurrency or len(settings.servers)  # type: ignore[misc]
        self.root = root
        self._clock = clock
        self._load: dict[str, int] = dict.fromkeys(settings.servers, 0)
        self._dead_until: dict[str, float] = {}
        self._active: dict[str, str] = {}  # prompt id -> server, for jobs this process submitted
        self._uploaded: dict[tuple[str, str], str] = {}  # (server, name) -> name stored there

    @classmethod
    def from_settings(
        cls,
        settings: ComfyUISettings | None,
        project_root: Path,
        client: httpx.AsyncClient | None = None,
    ) -> ComfyUIProvider:
        return cls(
            settings=(settings or ComfyUISettings()).resolved(), root=project_root, client=client
        )

    # ------------------------------------------------------------------ the pool
    def candidates(self) -> list[str]:
        """Servers to try for a new job: live ones least loaded first (ties in the order
        configured), then ones marked dead (they may be back)."""
        now = self._clock()
        servers = list(self.settings.servers)
        live = sorted(
            (s for s in servers if self._dead_until.get(s, 0.0) <= now),
            key=lambda s: self._load.get(s, 0),
        )
        return live + [s for s in servers if s not in live]

    def load(self, server: str) -> int:
        """Jobs of this process in flight on ``server``."""
        return self._load.get(server, 0)

    def _mark_dead(self, server: str) -> None:
        self._dead_until[server] = self._clock() + DEAD_SECONDS

    def _release(self, server: str) -> None:
        self._load[server] = max(0, self._load.get(server, 0) - 1)

    def _finished(self, prompt_id: str) -> None:
        server = self._active.pop(prompt_id, None)
        if server is not None:
            self._release(server)

    # ------------------------------------------------------------------ the workflow
    def _workflow_text(self, rel: Any) -> tuple[str, str]:
        hint = "set models.<name>.workflow to a project file saved with 'Save (API Format)'"
        if not isinstance(rel, str) or not rel.strip():
            raise ProviderError("ComfyUI model has no workflow file", hint=hint)
        path = self.root / rel
        if PurePath(rel).is_absolute() or not is_within(self.root, path):
            raise ProviderError(
                f"ComfyUI workflow {rel!r} lies outside the project {self.root}",
                hint="keep workflows inside the project, e.g. workflows/wan.json",
            )
        if not path.is_file():
            raise ProviderError(
                f"ComfyUI workflow {rel} does not exist (looked at {path})", hint=hint
            )
        return rel, path.read_text("utf-8")

    @staticmethod
    def _values(payload: Mapping[str, Any], names: Mapping[str, str]) -> dict[str, Any]:
        values: dict[str, Any] = {k: v for k, v in payload.items() if k != "workflow"}
        values.update(names)
        for placeholder in FILE_PLACEHOLDERS:  # text-to-video with a workflow that takes keyframes
            values.setdefault(placeholder, None)
        return values

    # ------------------------------------------------------------------ the interface
    def build_input(
        self, request: GenerationRequest, uploaded: Mapping[Path, str]
    ) -> dict[str, Any]:
        """The catalogue's payload with keyframes as local paths under ``image``/``end_image``:
        they are uploaded to whichever server runs the job, at submit time."""
        payload = dict(request.payload)
        for field_name, path in request.file_inputs.items():
            payload.pop(field_name, None)
            key = "end_image" if path == request.end_image and path != request.image else "image"
            payload[key] = str(path)
        return payload

    async def _upload_to(self, server: str, path: Path) -> str:
        """Upload a keyframe to one server (once per process); returns the name to use."""
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ProviderError(f"ComfyUI upload: cannot read {path}: {exc.strerror}") from None
        name = upload_name(path, data)
        if (server, name) in self._uploaded:
            return self._uploaded[server, name]
        content_type = mimetypes.guess_type(path.name)[0] or "image/png"
        response = await self.wire.request(
            "POST",
            f"{server}/upload/image",
            files={"image": (name, data, content_type)},
            data={"type": "input", "overwrite": "true"},
        )
        if response.status_code >= 400:
            raise ProviderError(
                f"ComfyUI {server}: upload of {path.name} failed: "
                f"HTTP {response.status_code} {detail(response)}"
            )
        body = json_body(response, f"ComfyUI upload of {path.name}")
        stored = str(body.get("name") or name)
        if body.get("subfolder"):
            stored = f"{body['subfolder']}/{stored}"
        self._uploaded[server, name] = stored
        return stored

    async def submit(self, endpoint: str, payload: Mapping[str, Any]) -> JobHandle:
        source, text = self._workflow_text(payload.get("workflow"))
        files = {p: Path(str(payload[p])) for p in FILE_PLACEHOLDERS if payload.get(p)}
        # Render once with the names the uploads will get: template errors surface before any
        # traffic, and the output nodes are known.
        predicted = {p: upload_name(f, f.read_bytes()) for p, f in files.items() if f.is_file()}
        workflow = render_workflow(text, self._values(payload, predicted), source=source)
        outputs = video_nodes(workflow)
        errors: list[str] = []
        for server in self.candidates():
            self._load[server] = self._load.get(server, 0) + 1  # reserved: submits spread out
            try:
                names = {p: await self._upload_to(server, f) for p, f in files.items()}
            except ProviderError:
                self._release(server)
                raise
            except httpx.TransportError as exc:  # uploads are free: move on to the next server
                self._release(server)
                self._mark_dead(server)
                errors.append(f"{server}: {type(exc).__name__} during upload")
                continue
            if names != predicted:
                workflow = render_workflow(text, self._values(payload, names), source=source)
            try:
                response = await self.wire.request(
                    "POST", f"{server}/prompt", json={"prompt": workflow, "client_id": uuid.uuid4().hex}
                )
            except NOT_SENT as exc:
                self._release(server)
                self._mark_dead(server)
                errors.append(f"{server}: {type(exc).__name__}")
                continue
            except httpx.TransportError as exc:
                self._release(server)
                raise SubmitUncertain(
                    f"ComfyUI {server}: the connection failed after the workflow was sent "
                    f"({type(exc).__name__}); it may be running",
                    hint=UNCERTAIN_HINT,
                ) from None
            if response.status_code >= 400:
                self._release(server)
                if response.status_code == 400:
                    raise ProviderError(
                        f"ComfyUI {server} rejected workflow {source}: {node_errors(response)}",
                        hint="fix the workflow; check that every custom node it uses is "
                        "installed on the server",
                    )
                raise ProviderError(
                    f"ComfyUI {server} answered HTTP {response.status_code}: {detail(response)}",
                    retryable=response.status_code >= 500,
                )
            body = json_body(response, f"ComfyUI {server} /prompt")
            if not body.get("prompt_id"):
                self._release(server)
                raise ProviderError(f"ComfyUI {server} accepted the workflow but sent no prompt_id")
            prompt_id = str(body["prompt_id"])
            self._active[prompt_id] = server
            urls = {"server": server, "output_nodes": ",".join(outputs)}
            if isinstance(payload.get("seed"), int):
                urls["seed"] = str(payload["seed"])
            return JobHandle(provider=self.name, request_id=prompt_id, endpoint=endpoint, urls=urls)
        raise ProviderError(
            "no ComfyUI server could be reached: " + "; ".join(errors),
            hint="start a server or fix providers.comfyui.servers",
            retryable=True,
        )

    async def _get_json(self, url: str, what: str) -> dict[str, Any]:
        response = await send(
            self.wire,
            "GET",
            url,
            what=what,
            provider="ComfyUI",
            retry_on=_server_retryable,
            sleep=self._sleep,
            policy=self.policy,
        )
        if response.status_code >= 400:
            raise ProviderError(
                f"{what}: ComfyUI answered HTTP {response.status_code}: {detail(response)}",
                retryable=response.status_code >= 500,
            )
        return json_body(response, what)

    async def _queue(self, server: str) -> tuple[list[str], list[str]]:
        """Prompt ids running and pending (in queue order) on a server."""
        queue = await self._get_json(f"{server}/queue", f"queue of {server}")

        def ids(items: Any, ordered: bool) -> list[str]:
            rows = [i for i in items or [] if isinstance(i, list) and len(i) > 1]
            if ordered:
                rows.sort(key=lambda i: i[0] if isinstance(i[0], int | float) else 0)
            return [str(i[1]) for i in rows]

        return ids(queue.get("queue_running"), False), ids(queue.get("queue_pending"), True)

    async def _history(self, server: str, prompt_id: str) -> dict[str, Any] | None:
        history = await self._get_json(
            f"{server}/history/{prompt_id}", f"history of ComfyUI prompt {prompt_id}"
        )
        entry = history.get(prompt_id)
        return entry if isinstance(entry, dict) else None

    async def poll(self, handle: JobHandle) -> JobStatus:
        server, pid = handle.urls["server"], handle.request_id
        entry = await self._history(server, pid)
        if entry is None:
            running, pending = await self._queue(server)
            if pid in pending:
                return Queued(position=pending.index(pid))
            if pid in running:
                return Running()
            entry = await self._history(server, pid)  # it may have finished between the calls
            if entry is None:
                self._finished(pid)
                return Failed(
                    error=f"ComfyUI server {server} no longer knows prompt {pid} "
                    "(was it restarted?)",
                    error_type="lost",
                )
        status = entry.get("status") or {}
        if status.get("status_str") == "error":
            self._finished(pid)
            error, kind = execution_error(status)
            return Failed(error=error, error_type=kind)
        if status.get("completed") or status.get("status_str") == "success" or not status:
            self._finished(pid)
            return Completed()
        return Running()

    async def result(self, handle: JobHandle) -> JobResult:
        server, pid = handle.urls["server"], handle.request_id
        entry = await self._history(server, pid) or {}
        preferred = [n for n in handle.urls.get("output_nodes", "").split(",") if n]
        found = pick_output(entry.get("outputs") or {}, preferred)
        if found is None:
            raise ProviderError(
                f"ComfyUI job {pid} finished without a video output",
                hint="the workflow needs a video save node (VHS Video Combine or SaveVideo)",
            )
        node_id, item = found
        query = httpx.QueryParams(
            {
                "filename": item["filename"],
                "subfolder": item.get("subfolder") or "",
                "type": item.get("type") or "output",
            }
        )
        seed = handle.urls.get("seed")
        return JobResult(
            video_url=f"{server}/view?{query}",
            seed=int(seed) if seed else None,
            metadata={
                "prompt_id": pid,
                "server": server,
                "node": node_id,
                "filename": item["filename"],
                "content_type": item.get("format"),
            },
        )

    async def fetch(self, result: JobResult, dest: Path) -> None:
        await self.fetch_to(result.video_url, dest, what="ComfyUI output")

    async def cancel(self, handle: JobHandle) -> None:
        server, pid = handle.urls["server"], handle.request_id
        try:
            running, pending = await self._queue(server)
            if pid in pending:
                await self.wire.request("POST", f"{server}/queue", json={"delete": [pid]})
            elif pid in running:  # newer servers stop only this prompt, older the current one
                await self.wire.request("POST", f"{server}/interrupt", json={"prompt_id": pid})
        except httpx.TransportError as exc:
            raise ProviderError(f"cancel of ComfyUI prompt {pid}: {type(exc).__name__}") from None
        finally:
            self._finished(pid)
