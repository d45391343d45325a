"""The HTML review page ``video/review.html``: per clip a player, first/last frames (and the
keyframe of an image-to-video clip), prompt, model, mode, seed, cost, takes and review flags.

Gathered from the plan, ``aivp.lock``, ``video/log/*.json``, ``video/plan.md``, the cache's
take records and the state's reviews. The page is self-contained (inline CSS and JS, no
network); videos, frames and takes are linked by relative paths, so it opens from file://.
Thumbnails are small JPEG files in ``video/review/`` named by content digest: an unchanged
clip's are reused without decoding anything, and the HTML stays small (no data URIs).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from aivpbuild.fsutil import atomic_write_text

PAGE = "video/review.html"
CONTACT_SHEET = "video/contact-sheet.png"
TEMPLATE = "review.html.j2"
THUMB_SUFFIXES = ("-first.jpg", "-last.jpg", "-key.jpg")
SHEET_MAX_CLIPS = 300  # above this the contact sheet is drawn only by `aivpbuild contact-sheet`
PRELOAD_MAX_CLIPS = 60  # above this players load nothing until played (the poster shows)
#: Above this many clips builds leave the page (and its thumbnails) to `aivpbuild report`.
AUTO_PAGE_MAX_CLIPS = 500


@dataclass
class TakeLink:
    """Another (or the current) take of a clip, linked from the page."""

    number: int
    href: str | None  # the take's file in the cache, relative to the page (None: not cached)
    current: bool
    rejected: str | None
    review: str | None  # "passed", "failed" or None


@dataclass
class Flag:
    """One review check of the current take."""

    name: str
    passed: bool
    value: str
    threshold: str
    message: str


@dataclass
class ClipEntry:
    """Everything the page shows about one clip."""

    index: int
    clip_id: str
    status: str  # "ok", "failed" or "not built"
    output: str
    prompt: str
    model: str
    provider: str
    mode: str
    duration: float
    size: str
    src: str | None = None
    digest: str | None = None
    seed: int | None = None
    cost_usd: float = 0.0
    built_at: str | None = None
    log: str | None = None
    first: str | None = None
    last: str | None = None
    keyframe: str | None = None
    keyframe_name: str | None = None
    take: int | None = None
    takes: list[TakeLink] = field(default_factory=list)
    reviewed: bool | None = None  # True passed, False failed, None not reviewed
    flags: list[Flag] = field(default_factory=list)
    rejected: str | None = None
    note: str | None = None  # why something is missing (a failed build, unreadable frames)


@dataclass
class Totals:
    clips: int
    built: int
    failed: int
    seconds: float
    spent_usd: float
    saved_usd: float


@dataclass
class ReviewPage:
    name: str
    profile: str | None
    generated: str
    entries: list[ClipEntry]
    totals: Totals
    links: dict[str, str]  # label -> relative href (the cut, contact sheet, plan)


@dataclass
class _Where:
    """The places one page is written from and to."""

    root: Path
    page_dir: Path
    thumb_dir: Path

    def href(self, path: Path) -> str:
        """``path`` relative to the page, as a URL path."""
        return quote(Path(os.path.relpath(path, self.page_dir)).as_posix(), safe="/")


def default_page(root: Path) -> Path:
    return root / PAGE


def thumb_dir_of(page: Path) -> Path:
    """Where a page's thumbnails live: ``video/review/`` beside ``video/review.html``."""
    return page.with_suffix("")


def clip_thumb_paths(thumb_dir: Path, digest: str) -> tuple[Path, Path]:
    """The first- and last-frame thumbnails of the clip whose bytes have ``digest``."""
    first, last = (thumb_dir / f"{digest[:24]}{s}" for s in THUMB_SUFFIXES[:2])
    return first, last


def thumbs_for_built_clip(root: Path, output: Path, digest: str) -> None:
    """Make a just-built clip's thumbnails for the default page (called during a build, so
    the page written after it has nothing left to decode); unreadable clips are left to the
    page, which notes them."""
    from aivpbuild.errors import MediaError
    from aivpbuild.media.thumbs import clip_thumbs

    first, last = clip_thumb_paths(thumb_dir_of(default_page(root)), digest)
    if not last.is_file():
        with contextlib.suppress(MediaError):
            clip_thumbs(output, first, last)


def write_report(root: Path, plan: Any, state: Any, cache: Any, lock: Any, out: Path | None = None) -> Path:
    """Gather, render and atomically write the page; returns its path."""
    page_path = out if out is not None else default_page(root)
    where = _Where(root, page_path.parent, thumb_dir_of(page_path))
    page = gather(where, plan, state, cache, lock)
    make_thumbs(where, page.entries, plan)
    atomic_write_text(page_path, render(page), durable=False)
    prune_thumbs(where.thumb_dir, _thumb_names(page.entries))
    return page_path


def gather(where: _Where, plan: Any, state: Any, cache: Any, lock: Any) -> ReviewPage:
    """The page's data: one entry per clip in manifest order, the totals and the links."""
    from aivpbuild.outputs import PLAN_PATH, parse_plan, utc_now
    from aivpbuild.spend import spend_report

    plan_md = where.root / PLAN_PATH
    rows = parse_plan(plan_md.read_text("utf-8")) if plan_md.is_file() else []
    plan_status = {r.get("File", ""): r.get("Status", "") for r in rows}
    entries = [clip_entry(where, target, i, state, cache, lock, plan_status.get(target.output))
               for i, target in enumerate(plan.clips(), 1)]
    spend = spend_report(state.spend_rows())
    built = [e for e in entries if e.src is not None]
    totals = Totals(clips=len(entries), built=len(built), failed=sum(e.status == "failed" for e in entries),
                    seconds=sum(e.duration for e in built), spent_usd=spend["total_usd"],
                    saved_usd=spend["saved_by_cache_usd"])
    return ReviewPage(plan.name, plan.profile, utc_now(), entries, totals, _links(where, plan))


def _links(where: _Where, plan: Any) -> dict[str, str]:
    from aivpbuild.outputs import PLAN_PATH

    candidates = {"final cut": next((t.output for t in plan.targets.values() if t.kind == "edit"), None),
                  "contact sheet": CONTACT_SHEET, "plan": PLAN_PATH}
    return {label: where.href(where.root / rel) for label, rel in candidates.items()
            if rel and (where.root / rel).is_file()}


def clip_entry(where: _Where, target: Any, index: int, state: Any, cache: Any, lock: Any,
               plan_status: str | None) -> ClipEntry:
    """One clip: what was built (its log and lock entry), else what the manifest asks for."""
    request = target.request
    log = _read_log(where.root, target.clip_id)
    entry = ClipEntry(
        index=index, clip_id=target.clip_id, status="not built", output=target.output,
        prompt=str(log.get("prompt") or request.prompt), model=str(log.get("model") or request.endpoint),
        provider=str(log.get("provider") or request.provider), mode=str(log.get("mode") or request.mode).upper(),
        duration=request.duration, size=f"{request.width}x{request.height}", seed=request.seed)
    _add_keyframe(where, entry, request, state)
    locked = lock.get(target.id)
    if locked and (where.root / target.output).is_file():
        _add_build(where, entry, target, locked, log, state)
        _add_takes(where, entry, clip_takes(cache, state, lock, target, locked.get("key"), entry.digest or ""))
    failed = entry.reviewed is False or plan_status == "failed"
    if failed:
        entry.status = "failed"
        entry.note = None if entry.src else "the last build of this clip failed"
    return entry


def _add_build(where: _Where, entry: ClipEntry, target: Any, locked: Mapping[str, Any],
               log: Mapping[str, Any], state: Any) -> None:
    """The built clip: its file, thumbnails, lock facts and the review of these bytes."""
    digest = state.digest(where.root, target.output)
    entry.status, entry.src, entry.digest = "ok", where.href(where.root / target.output), digest
    entry.seed = locked.get("seed", entry.seed)
    entry.cost_usd = float(locked.get("cost_usd") or 0.0)
    entry.built_at = locked.get("built_at")
    entry.rejected = locked.get("rejected")
    entry.take = locked.get("take")
    entry.log = where.href(where.root / "video" / "log" / f"{target.clip_id}.json") if log else None
    entry.first, entry.last = (where.href(p) for p in clip_thumb_paths(where.thumb_dir, digest))
    review = state.review_of(target.id, digest) or log.get("review")
    entry.reviewed = None if not review else bool(review.get("passed"))
    entry.flags = review_flags(review or {})


def _add_takes(where: _Where, entry: ClipEntry, takes: Iterable[Any]) -> None:
    """Links to every take's file in the cache; the current take's number."""
    entry.takes = [TakeLink(t.number, where.href(t.path) if t.path.is_file() else None, t.current,
                            t.rejected, t.review) for t in takes]
    entry.take = next((t.number for t in entry.takes if t.current), entry.take)


def clip_takes(cache: Any, state: Any, lock: Any, target: Any, key: str | None, digest: str) -> list[Any]:
    """The clip's takes under the key it was built with, oldest first (``TakeInfo``s: number,
    path in the cache, current, rejected, review). The one whose bytes are in ``video/`` is
    current even when the lock disagrees (a hand-restored file)."""
    from aivpbuild.takes import list_takes

    if not key:
        return []
    takes = list_takes(cache, state, lock, target.id, key)
    if takes and not any(t.current for t in takes):
        for take in reversed(takes):
            if take.digest == digest:
                take.current = True
                break
    return takes


def _add_keyframe(where: _Where, entry: ClipEntry, request: Any, state: Any) -> None:
    """An image-to-video clip's keyframe thumbnail (named by the image's digest)."""
    image = request.image if entry.mode == "I2V" else None
    if image is None or not Path(image).is_file():
        return
    try:
        rel = Path(image).resolve().relative_to(where.root).as_posix()
    except ValueError:
        return
    digest = state.digest(where.root, rel)
    entry.keyframe = where.href(where.thumb_dir / f"{digest[:24]}{THUMB_SUFFIXES[2]}")
    entry.keyframe_name = rel


def review_flags(record: Mapping[str, Any]) -> list[Flag]:
    """A review record's checks, failed ones first, values formatted for reading."""
    checks = record.get("checks") or {}
    flags = [Flag(name, bool(c.get("passed")), _fmt(c.get("value")), _fmt(c.get("threshold")),
                  str(c.get("message") or "")) for name, c in checks.items()]
    return sorted(flags, key=lambda f: f.passed)


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def _read_log(root: Path, clip_id: str) -> dict[str, Any]:
    try:
        data = json.loads((root / "video" / "log" / f"{clip_id}.json").read_text("utf-8"))
    except (FileNotFoundError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def make_thumbs(where: _Where, entries: Iterable[ClipEntry], plan: Any) -> None:
    """Write the thumbnails the page names that are not there yet, clips in parallel (PyAV
    decodes without the GIL). A clip whose frames cannot be read gets a note instead."""
    from concurrent.futures import ThreadPoolExecutor

    from aivpbuild.errors import MediaError
    from aivpbuild.media.thumbs import clip_thumbs, image_thumb

    jobs: list[tuple[ClipEntry, Any, tuple[Any, ...]]] = []
    requests = {t.clip_id: t.request for t in plan.clips()}
    for entry in entries:
        if entry.keyframe and not (thumb := where.thumb_dir / Path(entry.keyframe).name).is_file():
            jobs.append((entry, image_thumb, (Path(requests[entry.clip_id].image), thumb)))
        if entry.digest and not (paths := clip_thumb_paths(where.thumb_dir, entry.digest))[1].is_file():
            jobs.append((entry, clip_thumbs, (where.root / entry.output, *paths)))
    if not jobs:
        return

    def run(job: tuple[ClipEntry, Any, tuple[Any, ...]]) -> None:
        entry, func, args = job
        try:
            func(*args)
        except MediaError as exc:
            entry.note = exc.message
            if func is clip_thumbs:
                entry.first = entry.last = None
            else:
                entry.keyframe = None

    with ThreadPoolExecutor(max_workers=min(len(jobs), os.cpu_count() or 2)) as pool:
        list(pool.map(run, jobs))


def _thumb_names(entries: Iterable[ClipEntry]) -> set[str]:
    return {Path(href).name for e in entries for href in (e.first, e.last, e.keyframe) if href}


def prune_thumbs(thumb_dir: Path, keep: set[str]) -> None:
    """Remove thumbnails no clip uses any more (old takes), so the folder does not grow."""
    if not thumb_dir.is_dir():
        return
    for path in thumb_dir.iterdir():
        if path.name.endswith(THUMB_SUFFIXES) and path.name not in keep:
            path.unlink(missing_ok=True)


def render(page: ReviewPage) -> str:
    """The page's HTML (jinja2 with autoescape: every prompt and message is escaped)."""
    import jinja2

    env = jinja2.Environment(loader=jinja2.PackageLoader("aivpbuild", "templates"),
                             autoescape=True, trim_blocks=True, lstrip_blocks=True,
                             undefined=jinja2.StrictUndefined)
    preload = "metadata" if len(page.entries) <= PRELOAD_MAX_CLIPS else "none"
    return env.get_template(TEMPLATE).render(page=page, totals=page.totals, preload=preload)


def refresh_contact_sheet(root: Path, plan: Any, state: Any, draw: Callable[[], Any]) -> bool:
    """Call ``draw()`` (which writes ``video/contact-sheet.png``) unless the sheet is there and
    the built clips are the same bytes as when it was drawn (a stamp in ``.aivp/``); returns
    whether it drew. Nothing is drawn when no clip is built, nor for more than
    ``SHEET_MAX_CLIPS`` clips (a sheet that tall helps nobody and costs memory)."""
    from aivpbuild.fsutil import sha256_bytes

    built = [(t.clip_id, state.digest(root, t.output)) for t in plan.clips() if (root / t.output).is_file()]
    if not built or len(built) > SHEET_MAX_CLIPS:
        return False
    stamp = sha256_bytes(json.dumps(built).encode())
    stamp_path = root / ".aivp" / "contact-sheet.stamp"
    sheet = root / CONTACT_SHEET
    if sheet.is_file() and stamp_path.is_file() and stamp_path.read_text("utf-8").strip() == stamp:
        return False
    draw()
    atomic_write_text(stamp_path, stamp + "\n", durable=False)
    return True
