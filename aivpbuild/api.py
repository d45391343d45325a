"""The library API: :class:`Project` loads a manifest and answers status/build/graph/clean.

The CLI is a thin layer over this; tests call it in-process.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Callable, Iterable, Iterator
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aivpbuild.errors import ConfigError, ManifestError
from aivpbuild.providers.base import GenerationRequest

if TYPE_CHECKING:
    from aivpbuild.manifest import Manifest
    from aivpbuild.targets import Plan

AIVP_DIR = ".aivp"
MANIFEST_NAMES = ("project.aivp.yaml", "project.aivp.yml")


def _quiet(*_args: Any, **_kwargs: Any) -> None:
    return None


class Project:
    """A loaded project: its root, manifest and the plan under the chosen profile."""

    def __init__(self, root: Path, manifest_path: Path, plan: Plan, order: list[str] | None = None,
                 manifest: Manifest | None = None) -> None:
        self.root = root
        self.manifest_path = manifest_path
        self.plan = plan
        self._order = order
        self._manifest = manifest

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(cls, root: Path | str = ".", manifest: Path | str | None = None,
             profile: str | None = None) -> Project:
        """Read and plan the project; reuses the cached plan when nothing it depends on changed."""
        from aivpbuild import plancache
        from aivpbuild.fsutil import sha256_bytes

        root = Path(root).resolve()
        if not root.is_dir():
            raise ConfigError(f"project directory {root} does not exist", hint="check -C DIR")
        path = root / manifest if manifest else _find_manifest(root)
        if not path.is_file():
            raise ManifestError(f"manifest {path} does not exist", hint="check -f FILE")
        data = path.read_bytes()
        display = Path(path.relative_to(root)) if path.is_relative_to(root) else path
        key = plancache.cache_key(display.as_posix(), sha256_bytes(data), profile)
        cached = plancache.load(root, key, profile)
        if cached is not None:
            return cls(root, path, cached.plan, cached.order)
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ManifestError(f"{display}: not UTF-8 text ({exc.reason} at byte {exc.start})",
                                hint="save the manifest as UTF-8") from None
        from aivpbuild.manifest import parse_manifest
        from aivpbuild.plan import Planner

        model = parse_manifest(text, display)
        planner = Planner(model, root=root, source=display, text=text, profile=profile)
        project = cls(root, path, planner.plan(), manifest=model)
        files = {rel: st for rel in planner.files_read if (st := plancache.file_stat(root, rel))}
        plancache.save(root, plancache.CachedPlan(key, project.plan, project.order,
                                                  planner.paths_seen, files), profile)
        return project

    @property
    def manifest(self) -> Manifest:
        """The validated manifest (parsed on demand when the plan came from the cache)."""
        if self._manifest is None:
            from aivpbuild.manifest import parse_manifest

            text = self.manifest_path.read_text("utf-8")
            self._manifest = parse_manifest(text, self.manifest_path)
        return self._manifest

    @cached_property
    def graph(self) -> Any:
        from aivpbuild.graph import build_graph

        return build_graph(self.plan.targets)

    @property
    def order(self) -> list[str]:
        if self._order is None:
            from aivpbuild.graph import build_order

            self._order = build_order(self.graph, self.plan.targets)
        return self._order

    def notices(self, *, grouped: bool = True) -> list[str]:
        """The plan's notices; for people (``grouped``) one line for a message many clips
        share ("12 clips: …"), for scripts one per clip."""
        notices = [n for t in self.plan.targets.values() for n in t.notices]
        return group_notices(notices) if grouped else notices

    def storyboard_checks(self) -> list[str]:
        """The storyboard checks (portraits, scene sheets, durations, frame plan) as warning
        lines, when the project has ``storyboard/storyboard-final/``; [] (and no cost) if not."""
        if not (self.root / "storyboard" / "storyboard-final").is_dir():
            return []
        from aivpbuild.compile import status_warnings

        try:
            return status_warnings(self.root, self.manifest_path)
        except ConfigError as exc:  # the compile extra is not installed
            return [f"warning: storyboard checks skipped: {exc.message} ({exc.hint})"]

    def select(self, patterns: Iterable[str]) -> set[str] | None:
        from aivpbuild.graph import select

        patterns = list(patterns)
        return select(self.graph, self.plan.targets, patterns) if patterns else None

    # ------------------------------------------------------------------ state
    @contextlib.contextmanager
    def _session(self) -> Iterator[tuple[Any, Any, Any]]:
        from aivpbuild.cache import Cache
        from aivpbuild.lockfile import LOCK_NAME, LockFile
        from aivpbuild.state import StateDB

        state = StateDB(self.root / AIVP_DIR / "state.db")
        try:
            lock = LockFile.load(self.root / LOCK_NAME, memo=self.root / AIVP_DIR / "lock.pickle")
            yield state, Cache(self.root / AIVP_DIR / "cache"), lock
        finally:
            state.close()

    def status(self, targets: Iterable[str] = (), *, force: bool = False,
               forced: Iterable[str] = ()) -> list[Any]:
        """Each selected target's state and reasons, in build order (nothing is written but
        the stat cache); ``forced`` ids count as needing work."""
        from aivpbuild.staleness import Evaluator

        selected = self.select(targets)
        order = self.order  # graph errors (cycles) surface before anything is opened
        statuses = []
        also = set(forced)
        with self._session() as (state, cache, lock):
            evaluator = Evaluator(self.root, state, cache, lock)
            digests: dict[str, str | None] = {}
            for tid in order:
                target = self.plan.targets[tid]
                status = evaluator.evaluate(target, digests, forced=tid in also or (
                    force and (selected is None or tid in selected)))
                digests[tid] = None if status.needs_work else status.digest
                if selected is None or tid in selected:
                    statuses.append(status)
        return statuses

    # ------------------------------------------------------------------ build
    def build(self, targets: Iterable[str] = (), *, jobs: int | None = None,
              keep_going: bool = False, force: bool = False,
              report: Callable[..., None] = _quiet, resubmit_uncertain: bool = False,
              max_cost: float | None = None, cancel_on_interrupt: bool = False,
              confirm: Callable[[float, str], bool] | None = None, review: bool = False,
              retry_failed: int = 0, rerolls: dict[str, int | None] | None = None) -> Any:
        """Make every selected target that is not up to date. Returns a BuildResult.

        The budget guard runs first: over ``max_cost`` (or ``budget.max_usd``) raises
        BudgetError before anything is submitted; over ``budget.confirm_usd`` asks
        ``confirm(total, most_expensive)`` when given (the CLI passes one only on a terminal).
        With ``review`` each generated clip is reviewed as it arrives; ``retry_failed`` lets a
        failed one have that many extra takes, paid from what the budget leaves. ``rerolls``
        (target id -> seed or None) makes a new take of those targets now.
        """
        from aivpbuild.budget import check_budget, most_expensive
        from aivpbuild.buildlock import BuildLock
        from aivpbuild.errors import BudgetError
        from aivpbuild.executor import BuildContext, BuildOptions, Executor
        from aivpbuild.outputs import OutputWriter

        if retry_failed and not review:
            raise ConfigError("--retry-failed needs --review", hint="build --review --retry-failed 2")
        targets = list(targets)
        statuses = self.status(targets, force=force, forced=rerolls or ())
        limit = max_cost if max_cost is not None else self.plan.budget
        total = check_budget(statuses, limit)
        if confirm is not None and total > self.plan.confirm_usd and not confirm(total, most_expensive(statuses)):
            raise BudgetError(f"build of estimated ${total:.2f} declined; nothing was submitted")
        if all(s.state == "up to date" for s in statuses):  # a no-op: nothing to lock or write
            from aivpbuild.executor import BuildResult, Outcome

            for notice in self.notices():
                report("notice", None, message=notice)
            if not (self.root / "video" / "review.html").is_file():
                self._report_after_build(report)
            return BuildResult({s.target: Outcome(s.target, "up to date", s) for s in statuses})
        selected = self.select(targets)
        order = [t for t in self.order if selected is None or t in selected]
        forced = frozenset(order if force and selected is None else (selected or set()) if force else ())
        forced |= frozenset(rerolls or ())
        with BuildLock(self.root / AIVP_DIR / "build.pid"), self._session() as (state, cache, lock):
            for notice in self.notices():
                report("notice", None, message=notice)
            files = OutputWriter(self.root, self.plan, cache)
            providers = _ProviderPool(self, jobs)
            for status in statuses:  # settings and keys are checked before anything starts
                target = self.plan.targets[status.target]
                if status.needs_work and isinstance(getattr(target, "request", None), GenerationRequest):
                    providers.get(target.request.provider)  # type: ignore[union-attr]

            def both(kind: str, tid: str | None, **info: Any) -> None:
                files.event(kind, tid, **info)
                report(kind, tid, **info)

            ctx = BuildContext(
                root=self.root, plan=self.plan, state=state, cache=cache, lock=lock,
                providers=providers.get, report=both, on_target_done=files.target_done,
                selected=selected, close_providers=providers.aclose,
            )
            wanted = {s.key for s in statuses if s.key}
            orphans = tuple(j for j in state.open_jobs() if j.handle and j.key not in wanted
                            and j.target in self.plan.targets)
            for job in orphans:
                report("notice", job.target, message=f"journaled {job.provider} job {job.request_id} "
                       f"for {job.target} is no longer wanted (the clip changed); collecting its paid "
                       "result into the cache")
                providers.get(job.provider)
            options = BuildOptions(jobs=jobs, keep_going=keep_going, forced=forced,
                                   resubmit_uncertain=resubmit_uncertain,
                                   cancel_on_interrupt=cancel_on_interrupt, orphans=orphans,
                                   rerolls=dict(rerolls or {}),
                                   review=self._review_hook() if review else None,
                                   retry_failed=retry_failed,
                                   retry_budget=None if limit is None else max(0.0, limit - total))
            ctx.on_review = files.target_reviewed
            files.start(lock, state.review_of)
            try:
                result = Executor(ctx, options).run(order)
            finally:
                lock.save()
                files.finish(lock)
        self._report_after_build(report)
        return result

    def _report_after_build(self, report: Callable[..., None]) -> None:
        """The review page and contact sheet after a build (or a review); failing to write
        them is a warning, never a failed build. Very large projects are left to `report`."""
        from aivpbuild.report import AUTO_PAGE_MAX_CLIPS

        if len(self.plan.clips()) > AUTO_PAGE_MAX_CLIPS:
            return
        try:  # a contact sheet is kept current once there is one (drawing it decodes every clip)
            self.report(contact_sheet=(self.root / "video" / "contact-sheet.png").is_file())
        except Exception as exc:
            report("notice", None, message=f"warning: the review page was not written: {exc}")

    # ------------------------------------------------------------------ other commands
    def graph_text(self, fmt: str = "mermaid") -> str:
        from aivpbuild.graph import to_dot, to_mermaid

        return (to_dot if fmt == "dot" else to_mermaid)(self.graph, self.order)

    def clean(self, *, cache: bool = False) -> list[str]:
        """Remove generated outputs under video/ (kept in the cache unless ``cache``)."""
        from aivpbuild.buildlock import BuildLock

        removed: list[str] = []
        with BuildLock(self.root / AIVP_DIR / "build.pid"):
            for target in self.plan.targets.values():
                path = self.root / target.output
                if path.is_file():
                    path.unlink()
                    removed.append(target.output)
            for rel in ("video/log", "video/plan.md", "video/review", "video/review.html",
                        "video/contact-sheet.png"):
                path = self.root / rel
                if path.is_dir():
                    shutil.rmtree(path)
                    removed.append(rel + "/")
                elif path.is_file():
                    path.unlink()
                    removed.append(rel)
            if cache and (self.root / AIVP_DIR / "cache").is_dir():
                shutil.rmtree(self.root / AIVP_DIR / "cache")
                removed.append(f"{AIVP_DIR}/cache/")
        return removed

    def contact_sheet(self, out: Path | None = None, *, thumb_width: int = 240) -> Path:
        """A PNG of each built clip's first, middle and last frames (default video/contact-sheet.png)."""
        from aivpbuild.media.contact_sheet import contact_sheet

        clips = [(t.clip_id, self.root / t.output) for t in self.plan.clips()
                 if (self.root / t.output).is_file()]
        if not clips:
            raise ConfigError("no clip has been built yet", hint="run `aivpbuild` first")
        path = out if out is not None else self.root / "video" / "contact-sheet.png"
        contact_sheet(clips, path, thumb_width=thumb_width)
        return path

    def report(self, out: Path | None = None, *, contact_sheet: bool = True) -> Path:
        """Write the HTML review page (default video/review.html) and, with ``contact_sheet``
        and when the built clips changed, video/contact-sheet.png; returns the page's path."""
        from aivpbuild.report import refresh_contact_sheet, write_report

        with self._session() as (state, cache, lock):
            if contact_sheet:
                refresh_contact_sheet(self.root, self.plan, state, self.contact_sheet)
            return write_report(self.root, self.plan, state, cache, lock, out)

    def review(self, targets: Iterable[str] = ()) -> dict[str, Any]:
        """Technical review of every built clip (and of the cut into clips that continue the
        previous one); each result is written into the clip's ``video/log/<id>.json``."""
        import json

        from aivpbuild.outputs import LOG_DIR, PlanRow, write_clip_log, write_plan

        selected = self.select(targets)
        settings = self.manifest.review
        results: dict[str, Any] = {}
        previous: Path | None = None
        rows: list[PlanRow] = []
        with self._session() as (state, _cache, lock):
            for target in self.plan.clips():
                path = self.root / target.output
                entry = lock.get(target.id)
                row = PlanRow(target.clip_id, target.output, target.request.endpoint, target.request.mode,
                              "done" if entry and path.is_file() else "pending")
                rows.append(row)
                cut_from, previous = previous, path if path.is_file() else None
                if (selected is not None and target.id not in selected) or not path.is_file():
                    continue
                record = self._review_one(target, path, settings, cut_from)
                if not record["passed"]:
                    row.status = "failed"
                if entry and entry.get("digest"):
                    state.record_review(target=target.id, key=entry.get("key"), digest=str(entry["digest"]),
                                        result=record)
                results[target.clip_id] = record
                log = self.root / LOG_DIR / f"{target.clip_id}.json"
                if log.is_file():
                    write_clip_log(self.root, {**json.loads(log.read_text("utf-8")), "review": record})
        write_plan(self.root, self.plan.name, rows)
        if (self.root / "video" / "review.html").is_file():  # keep the page's flags current
            self._report_after_build(_quiet)
        return results

    def _review_hook(self) -> Callable[[Any], dict[str, Any]]:
        """Reviews one clip during a build (the cut from the clip before it when that is built)."""
        from itertools import pairwise

        before = {b.id: a for a, b in pairwise(self.plan.clips())}
        settings = self.manifest.review

        def review(target: Any) -> dict[str, Any]:
            previous = before.get(target.id)
            cut_from = self.root / previous.output if previous is not None else None
            return self._review_one(target, self.root / target.output, settings,
                                    cut_from if cut_from is not None and cut_from.is_file() else None)

        return review

    # ------------------------------------------------------------------ takes
    def _clip_key(self, clip: str) -> tuple[Any, str]:
        """The clip target named ``clip`` and its current key (ConfigError if unknown/unbuilt)."""
        tid = clip if clip.startswith("clip:") else f"clip:{clip}"
        target = self.plan.targets.get(tid)
        if target is None:
            raise ConfigError(f"no clip named {clip!r}", hint="`aivpbuild status` lists the clips")
        status = {s.target: s for s in self.status([tid])}[tid]
        if status.key is None:
            raise ConfigError(f"{clip}: its inputs are not built yet, so it has no takes",
                              hint=f"build it first: `aivpbuild {clip}`")
        return target, status.key

    def takes(self, clip: str) -> list[Any]:
        """The takes of a clip under its current manifest entry (TakeInfo, oldest first)."""
        from aivpbuild.takes import list_takes

        with self._session() as (state, cache, lock):
            target, key = self._clip_key(clip)
            return list_takes(cache, state, lock, target.id, key)

    def pick(self, clip: str, number: int) -> Any:
        """Make take ``number`` current: restored from the cache, no provider call; the lock
        and the clip's log say so."""
        from aivpbuild.buildlock import BuildLock
        from aivpbuild.executor import keep_local_edit
        from aivpbuild.lockfile import lock_entry
        from aivpbuild.outputs import OutputWriter
        from aivpbuild.takes import choose, list_takes

        with BuildLock(self.root / AIVP_DIR / "build.pid"), self._session() as (state, cache, lock):
            target, key = self._clip_key(clip)
            action, number = choose(cache, key, number, target.id)
            take = action.take
            keep_local_edit(self.root, target, state, cache, lock)
            cache.restore(take.digest, self.root / target.output)
            state.remember_digest(self.root, target.output, take.digest)
            cache.save(action)
            meta = take.metadata
            lock.set(target.id, lock_entry(key=key, output=target.output, digest=take.digest, size=take.size,
                                           meta=meta, built_at=take.created_at, take=number, picked=True))
            lock.save()
            OutputWriter(self.root, self.plan, cache).write_log(target, {**meta, "take": number}, "picked")
            return next(t for t in list_takes(cache, state, lock, target.id, key) if t.number == number)

    def reject(self, clip: str, reason: str = "") -> int:
        """Mark the clip's current take rejected: the next build makes a new take with a new
        seed (status says ``rejected``). Returns the rejected take's number."""
        from aivpbuild.buildlock import BuildLock
        from aivpbuild.takes import reject_current

        with BuildLock(self.root / AIVP_DIR / "build.pid"), self._session() as (_state, cache, lock):
            target, key = self._clip_key(clip)
            number = reject_current(cache, lock, target.id, key, reason)
            lock.save()
            return number

    def reroll(self, clip: str, *, seed: int | None = None, **build: Any) -> Any:
        """Make a new take of the clip now (``seed``, or a fresh one); the old take stays
        restorable. Returns the BuildResult."""
        target, _key = self._clip_key(clip)
        return self.build([target.id], rerolls={target.id: seed}, **build)

    def _review_one(self, target: Any, path: Path, settings: Any, cut_from: Path | None) -> dict[str, Any]:
        """One clip's review record, with the continuity check when the clip continues another."""
        from aivpbuild.media.review import ReviewExpect, continuity_check, review_clip

        request = target.request
        thresholds = settings.for_provider(request.provider)
        expect = ReviewExpect(
            width=request.width, height=request.height, fps=request.fps, duration=request.duration,
            audio=request.audio, has_dialogue=bool(request.dialogue), camera=request.camera,
            camera_fixed=request.camera_fixed, slate=request.provider == "local" and request.mode == "t2v",
            keyframe=request.image if request.mode == "i2v" else None, provider=request.provider)
        record: dict[str, Any] = review_clip(path, expect, thresholds).to_json()
        frame = next((t for t in target.upstream.values() if t.startswith("frame:")), None)
        if frame is not None:  # a derived-frame chain: the clip it continues
            cut_from = self.root / self.plan.targets[self.plan.targets[frame].upstream["clip"]].output
        elif not target.continuity:
            cut_from = None
        if cut_from is not None and cut_from.is_file():
            check = continuity_check(cut_from, path, thresholds)
            record["checks"][check.name] = check.to_json()
            record["passed"] = record["passed"] and check.passed
        return record

    def cost(self) -> dict[str, Any]:
        """Spend per clip and model, the total, and what cache hits saved."""
        from aivpbuild.spend import spend_report

        with self._session() as (state, _cache, _lock):
            return spend_report(state.spend_rows())

    def jobs(self) -> list[Any]:
        """Journaled remote jobs, newest first."""
        with self._session() as (state, _cache, _lock):
            return state.jobs()

    def cancel_jobs(self, ids: Iterable[int] = (), *, all_open: bool = False) -> list[str]:
        """Ask providers to cancel journaled jobs; returns what was done, per job."""
        import asyncio

        from aivpbuild.providers.base import JobHandle
        from aivpbuild.providers.registry import create_provider

        wanted = set(ids)
        done: list[str] = []
        with self._session() as (state, _cache, _lock):
            jobs = [j for j in state.open_jobs() if all_open or j.id in wanted]
            missing = wanted - {j.id for j in jobs}
            if missing:
                raise ConfigError(f"no open journaled job with id {', '.join(map(str, sorted(missing)))}",
                                  hint="`aivpbuild jobs` lists them")
            for job in jobs:
                if job.handle is None:
                    state.journal_state(job.id, "abandoned", "cancelled by the user before a request id was known")
                    done.append(f"{job.id}: forgotten (it had no request id)")
                    continue
                provider = create_provider(job.provider, root=self.root, settings=self._provider_settings(job.provider))
                asyncio.run(_cancel_and_close(provider, JobHandle.from_json(job.handle)))
                state.journal_state(job.id, "cancelled")
                done.append(f"{job.id}: cancel requested for {job.provider} {job.request_id}")
        return done

    def _provider_settings(self, name: str) -> Any:
        return getattr(self.manifest.providers, name, None)



async def _cancel_and_close(provider: Any, handle: Any) -> None:
    try:
        await provider.cancel(handle)
    finally:
        await provider.aclose()


#: A message shared by more clips than this is said once, with the count and the first ids.
NOTICE_GROUP = 3


def group_notices(notices: Iterable[str]) -> list[str]:
    """``clip: message`` notices with the same message, for more than NOTICE_GROUP clips,
    folded into one (in the order messages first appear)."""
    by_message: dict[str, list[str]] = {}
    for notice in notices:
        clip, sep, message = notice.partition(": ")
        by_message.setdefault(message if sep else notice, []).append(clip if sep else "")
    lines = []
    for message, clips in by_message.items():
        if len(clips) <= NOTICE_GROUP or not all(clips):
            lines += [f"{c}: {message}" if c else message for c in clips]
        else:
            lines.append(f"{len(clips)} clips ({', '.join(clips[:NOTICE_GROUP])}, …): {message}")
    return lines


def _find_manifest(root: Path) -> Path:
    for name in MANIFEST_NAMES:
        if (root / name).is_file():
            return root / name
    raise ManifestError(
        f"no manifest in {root}: expected {MANIFEST_NAMES[0]}",
        hint="run `aivpbuild init` to create one, or pass -C DIR / -f FILE",
    )


class _ProviderPool:
    """Creates each provider adapter on first use and closes them all at the end."""

    def __init__(self, project: Project, jobs: int | None) -> None:
        self.project = project
        self.jobs = jobs
        self._providers: dict[str, Any] = {}

    def get(self, name: str) -> Any:
        if name not in self._providers:
            import os

            from aivpbuild.providers.registry import create_provider

            workers = self.jobs or os.cpu_count() or 2
            settings = self.project._provider_settings(name) if name != "local" else None
            self._providers[name] = create_provider(name, root=self.project.root, settings=settings,
                                                    jobs=workers)
        return self._providers[name]

    async def aclose(self) -> None:
        for provider in self._providers.values():
            await provider.aclose()
        self._providers.clear()
