"""Outputs the downstream pipeline reads: ``video/log/<id>.json`` and ``video/plan.md``."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aivpbuild.fsutil import atomic_write_text

LOG_DIR = "video/log"
PLAN_PATH = "video/plan.md"
PLAN_STATES = ("pending", "queued", "done", "failed")


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _seconds(value: float) -> str:
    return f"{value:g}"


def clip_log(
    *, clip_id: str, file: str, model: str, mode: str, status: str, request_id: str | None,
    prompt: str, seed: int | None, duration: float, aspect_ratio: str, input_image: str | None,
    character_refs: Sequence[str], video_url: str | None, cost_usd: float | None,
    timestamp: str, extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """One clip's metadata record with every field DESIGN §7 lists (and extras after them)."""
    record: dict[str, Any] = {
        "id": clip_id, "type": "clip", "file": file, "model": model,
        "mode": mode.upper(), "status": status, "request_id": request_id, "prompt": prompt,
        "seed": seed, "duration": _seconds(duration), "aspect_ratio": aspect_ratio,
        "input_image": input_image, "character_refs": list(character_refs),
        "video_url": video_url, "cost_usd": cost_usd, "timestamp": timestamp,
    }
    record.update(extra or {})
    return record


def write_clip_log(root: Path, record: Mapping[str, Any]) -> None:
    text = json.dumps(record, indent=2, ensure_ascii=False) + "\n"
    path = root / LOG_DIR / f"{record['id']}.json"
    try:
        if path.read_text("utf-8") == text:
            return
    except FileNotFoundError:
        pass
    atomic_write_text(path, text, durable=False)


@dataclass
class PlanRow:
    clip_id: str
    file: str
    model: str
    mode: str
    status: str = "pending"


def render_plan(name: str, rows: Sequence[PlanRow]) -> str:
    """``video/plan.md``: one row per clip in manifest order."""
    out = [f"# Video plan — {name}", "", "| # | Type | File | Model | Mode | Status |",
           "|---|------|------|-------|------|--------|"]
    for i, row in enumerate(rows, 1):
        out.append(f"| {i} | clip | {row.file} | {row.model} | {row.mode.upper()} | {row.status} |")
    done = sum(r.status == "done" for r in rows)
    failed = sum(r.status == "failed" for r in rows)
    out += ["", f"{done}/{len(rows)} done" + (f", {failed} failed" if failed else "") + "."]
    return "\n".join(out) + "\n"


def write_plan(root: Path, name: str, rows: Sequence[PlanRow]) -> bool:
    """Write plan.md if it changed; returns whether it wrote."""
    text = render_plan(name, rows)
    path = root / PLAN_PATH
    try:
        if path.read_text("utf-8") == text:
            return False
    except FileNotFoundError:
        pass
    atomic_write_text(path, text, durable=False)
    return True


def parse_plan(text: str) -> list[dict[str, str]]:
    """Read plan.md's table back (used by tests and downstream tools)."""
    rows = [line for line in text.splitlines() if line.startswith("|")]
    if len(rows) < 2:
        return []
    header = [c.strip() for c in rows[0].strip("|").split("|")]
    return [dict(zip(header, (c.strip() for c in r.strip("|").split("|")), strict=True)) for r in rows[2:]]


class OutputWriter:
    """Keeps ``video/plan.md`` and ``video/log/*.json`` current while a build runs."""

    FLUSH_SECONDS = 0.5

    def __init__(self, root: Path, plan: Any, cache: Any) -> None:
        from aivpbuild.report import AUTO_PAGE_MAX_CLIPS
        from aivpbuild.targets import ClipTarget

        self.root = root
        self.plan = plan
        self.cache = cache
        self.rows: dict[str, PlanRow] = {
            t.id: PlanRow(t.clip_id, t.output, t.request.endpoint, t.request.mode)
            for t in plan.targets.values() if isinstance(t, ClipTarget)
        }
        self._last_flush = 0.0
        self._dirty = False
        self._thumbs: Any = None  # one worker making review-page thumbnails as clips arrive
        self._thumbs_wanted = len(self.rows) <= AUTO_PAGE_MAX_CLIPS  # large projects: `report` only

    def start(self, lock: Any, review_of: Callable[[str, str], dict[str, Any] | None] | None = None) -> None:
        """Rows from the lock: built clips are done, or failed when their take failed review."""
        for tid, row in self.rows.items():
            entry = lock.get(tid)
            built = entry and (self.root / row.file).is_file()
            row.status = "done" if built else "pending"
            if built and review_of is not None and entry.get("digest"):
                review = review_of(tid, str(entry["digest"]))
                if review is not None and not review.get("passed"):
                    row.status = "failed"
        self.flush(force=True)

    def event(self, kind: str, tid: str | None, **_info: Any) -> None:
        row = self.rows.get(tid or "")
        if row is None:
            return
        new = {"started": "queued", "queued": "queued", "failed": "failed"}.get(kind)
        if new and row.status != new:
            row.status = new
            self._dirty = True
            self.flush(force=kind == "failed")

    def target_done(self, target: Any, status: Any, outcome: Any, meta: dict[str, Any]) -> None:
        from aivpbuild.targets import ClipTarget

        if not isinstance(target, ClipTarget):
            return
        self.rows[target.id].status = "done"
        self._dirty = True
        self.write_log(target, meta, outcome.action)
        self.flush()
        if meta.get("digest") and self._thumbs_wanted:
            self._thumbnail(self.root / target.output, str(meta["digest"]))

    def _thumbnail(self, output: Path, digest: str) -> None:
        """Start the clip's review-page thumbnails now, overlapping the rest of the build."""
        from concurrent.futures import ThreadPoolExecutor

        from aivpbuild.report import thumbs_for_built_clip

        if self._thumbs is None:
            self._thumbs = ThreadPoolExecutor(max_workers=1, thread_name_prefix="thumbs")
        self._thumbs.submit(thumbs_for_built_clip, self.root, output, digest)

    def target_reviewed(self, target: Any, record: dict[str, Any]) -> None:
        """A clip reviewed during the build: the result goes into its log and plan row."""
        path = self.root / LOG_DIR / f"{target.clip_id}.json"
        if path.is_file():
            write_clip_log(self.root, {**json.loads(path.read_text("utf-8")), "review": record})
        self.rows[target.id].status = "done" if record.get("passed") else "failed"
        self._dirty = True
        self.flush(force=not record.get("passed"))

    def write_log(self, target: Any, meta: dict[str, Any], action: str) -> None:
        request = target.request
        rel = self._rel
        record = clip_log(
            clip_id=target.clip_id, file=target.output, model=request.endpoint,
            mode=request.mode, status="completed", request_id=meta.get("request_id"),
            prompt=request.prompt, seed=meta.get("seed", request.seed), duration=request.duration,
            aspect_ratio=request.aspect_ratio, input_image=rel(request.image),
            character_refs=[r for r in (rel(p) for p in request.refs) if r],
            video_url=meta.get("video_url"), cost_usd=float(meta.get("cost_usd") or 0.0),
            timestamp=meta.get("built_at") or utc_now(),
            extra={"provider": request.provider, "notes": meta.get("notes", []),
                   "restored_from_cache": action == "restored", "take": meta.get("take")},
        )
        write_clip_log(self.root, record)

    def _rel(self, path: Path | None) -> str | None:
        if path is None:
            return None
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return str(path)

    def flush(self, *, force: bool = False) -> None:
        import time

        now = time.monotonic()
        if not force and (not self._dirty or now - self._last_flush < self.FLUSH_SECONDS):
            return
        write_plan(self.root, self.plan.name, list(self.rows.values()))
        self._last_flush, self._dirty = now, False

    def finish(self, lock: Any) -> None:
        self.flush(force=True)
        if self._thumbs is not None:
            self._thumbs.shutdown(wait=True)
