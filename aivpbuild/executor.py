"""The executor: an asyncio scheduler that walks the target graph in dependency order.

Each target waits for its dependencies, re-evaluates its key with their actual output
digests, then is skipped (up to date), restored from the cache (free), or made: a clip
through its provider (upload → [journal intent] → submit → [journal request id] → wait →
result → fetch → verify → cache), a derived frame by extraction, the edit by assembly.
Outputs reach ``video/`` only through the cache and an atomic rename; ``aivp.lock`` is
rewritten after every finished target, so a crash never loses finished work.

A clip whose current take was rejected, or that is rerolled, gets a new take with a new
seed. With a review hook, each generated clip is reviewed as it arrives, and a failed one is
rejected and made again, up to ``retry_failed`` extra takes within ``retry_budget``.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aivpbuild.cache import Cache, Take
from aivpbuild.crashpoints import crash_point
from aivpbuild.errors import AivpError, MediaError, ProviderError
from aivpbuild.fsutil import sha256_bytes
from aivpbuild.keys import canonical_json
from aivpbuild.lockfile import LockFile, lock_entry
from aivpbuild.outputs import utc_now
from aivpbuild.providers.base import (
    Completed,
    Failed,
    GenerationRequest,
    JobHandle,
    JobStatus,
    Provider,
    Queued,
    Running,
)
from aivpbuild.staleness import MODIFIED, RESTORABLE, UP_TO_DATE, Evaluator, TargetStatus
from aivpbuild.state import StateDB
from aivpbuild.targets import ClipTarget, EditTarget, FrameTarget, Plan, Target

Reporter = Callable[..., None]


@dataclass
class BuildOptions:
    jobs: int | None = None            # global limit on targets worked at once (None: providers' own)
    keep_going: bool = False
    forced: frozenset[str] = frozenset()
    resubmit_uncertain: bool = False
    cancel_on_interrupt: bool = False
    #: Journaled paid jobs whose key no longer matches any target: collected into the cache.
    orphans: tuple[Any, ...] = ()
    #: Targets to make a new take of now: target id -> seed (None: a fresh one).
    rerolls: dict[str, int | None] = field(default_factory=dict)
    #: Reviews a generated clip (in a worker thread); returns the review record.
    review: Callable[[ClipTarget], dict[str, Any]] | None = None
    #: Extra takes a clip that fails review may get, and the dollars they may spend in all.
    retry_failed: int = 0
    retry_budget: float | None = None


@dataclass
class Outcome:
    target: str
    #: up to date | restored | generated | extracted | assembled | kept | failed | skipped
    action: str
    status: TargetStatus | None = None
    error: str | None = None
    seconds: float = 0.0
    cost_usd: float = 0.0


@dataclass
class BuildResult:
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    interrupted: bool = False
    #: Clips whose last take failed the review of ``build --review``.
    review_failed: list[str] = field(default_factory=list)

    def by_action(self, action: str) -> list[str]:
        return [o.target for o in self.outcomes.values() if o.action == action]

    @property
    def failed(self) -> list[str]:
        return self.by_action("failed")

    @property
    def skipped(self) -> list[str]:
        return self.by_action("skipped")


class TargetFailed(Exception):
    """A target could not be made; carries the user-facing reason."""


@dataclass
class BuildContext:
    root: Path
    plan: Plan
    state: StateDB
    cache: Cache
    lock: LockFile
    providers: Callable[[str], Provider]
    report: Reporter
    on_target_done: Callable[[Target, TargetStatus, Outcome, dict[str, Any]], None]
    #: Target ids to work on (dependencies included); others count as their lock says.
    selected: set[str] | None = None
    #: Closes the provider adapters, inside the build's event loop (their connections live there).
    close_providers: Callable[[], Awaitable[None]] | None = None
    #: Told each review result (writes it into the clip's log and plan row).
    on_review: Callable[[Target, dict[str, Any]], None] | None = None


def keep_local_edit(root: Path, target: Target, state: StateDB, cache: Cache, lock: LockFile) -> str | None:
    """Never lose a file the user changed: when the target's output differs from what the lock
    recorded, keep it in the cache (before it is replaced); returns the kept object's digest."""
    entry = lock.get(target.id)
    if entry is None or not (root / target.output).is_file():
        return None
    digest = state.digest(root, target.output)
    if digest == entry.get("digest"):
        return None
    cache.put_file(root / target.output, digest)
    return digest


class Executor:
    def __init__(self, ctx: BuildContext, options: BuildOptions) -> None:
        self.ctx = ctx
        self.options = options
        self.evaluator = Evaluator(ctx.root, ctx.state, ctx.cache, ctx.lock)
        self.digests: dict[str, str | None] = {}
        self.result = BuildResult()
        self._events: dict[str, asyncio.Event] = {}
        self._global: asyncio.Semaphore | None = None
        self._provider_limits: dict[str, asyncio.Semaphore] = {}
        self._stopping = False
        self._failed_fast = False
        self._tasks: list[asyncio.Task[None]] = []
        self._interrupts = 0
        self._inflight: dict[str, tuple[Provider, JobHandle, int | None]] = {}
        self._critical: set[asyncio.Future[Any]] = set()
        self._retries: dict[str, int] = {}
        self._retry_spent = 0.0

    # ------------------------------------------------------------------ running
    def run(self, order: list[str]) -> BuildResult:
        return asyncio.run(self._main(order))

    async def _main(self, order: list[str]) -> BuildResult:
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGINT, self._on_interrupt)
        if self.options.jobs:
            self._global = asyncio.Semaphore(self.options.jobs)
        self._events = {tid: asyncio.Event() for tid in order}
        self._tasks = [asyncio.create_task(self._run_target(tid), name=tid) for tid in order]
        self._tasks += [asyncio.create_task(self._collect_orphan(job)) for job in self.options.orphans]
        try:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        finally:
            if not self._interrupts:  # after one Ctrl-C the next must keep exiting at once
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.remove_signal_handler(signal.SIGINT)
            if self._critical:  # submits already on the wire: let them journal their request ids
                await asyncio.gather(*self._critical, return_exceptions=True)
            if self.ctx.close_providers is not None:
                await self.ctx.close_providers()
        self.result.interrupted = self._stopping and self._interrupts > 0
        return self.result

    def _on_interrupt(self) -> None:
        self._interrupts += 1
        signal.signal(signal.SIGINT, self._exit_now)  # a second Ctrl-C, wherever it lands
        self._stopping = True
        self.ctx.report("interrupted", None, again=False, cancelling=self.options.cancel_on_interrupt)
        if self.options.cancel_on_interrupt and self._inflight:
            asyncio.get_running_loop().create_task(self._cancel_inflight())
            return
        self._cancel_tasks()

    def _exit_now(self, _signum: int, _frame: Any) -> None:
        """Second Ctrl-C: leave at once. Every file write is atomic and every journal step is
        committed, so nothing is corrupted; submitted jobs resume on the next run."""
        import os

        self.ctx.report("interrupted", None, again=True)
        os._exit(130)

    def _cancel_tasks(self) -> None:
        for task in self._tasks:
            if not task.done():
                task.cancel()

    async def _cancel_inflight(self) -> None:
        """--cancel-on-interrupt: ask providers to stop every submitted job, then stop."""
        for provider, handle, job_id in list(self._inflight.values()):
            with contextlib.suppress(AivpError, OSError):
                await provider.cancel(handle)
                self._journal(job_id, "cancelled", "cancelled on interrupt")
        self._cancel_tasks()

    async def _run_target(self, tid: str) -> None:
        target = self.ctx.plan.targets[tid]
        start = time.monotonic()
        try:
            for dep in target.deps:
                if dep in self._events:
                    await self._events[dep].wait()
            blocked = [d for d in target.deps if self.result.outcomes.get(d) and
                       self.result.outcomes[d].action in ("failed", "skipped")]
            if blocked or self._failed_fast:
                why = f"needs {', '.join(blocked)}" if blocked else "an earlier target failed"
                self._finish(tid, Outcome(tid, "skipped", error=why))
                self.ctx.report("skipped", tid, reason=why)
                return
            outcome = await self._make(target)
            outcome.seconds = time.monotonic() - start
            self._finish(tid, outcome)
        except asyncio.CancelledError:
            self._finish(tid, Outcome(tid, "skipped", error="interrupted"))
        except (TargetFailed, AivpError, Exception) as exc:
            # An unexpected exception fails its target loudly instead of vanishing in gather().
            known = isinstance(exc, TargetFailed | AivpError)
            message = str(exc) if known else f"internal error: {type(exc).__name__}: {exc}"
            self._finish(tid, Outcome(tid, "failed", error=message, seconds=time.monotonic() - start))
            self.ctx.report("failed", tid, error=message)
            if not self.options.keep_going:
                self._failed_fast = True
        finally:
            self._events[tid].set()

    def _finish(self, tid: str, outcome: Outcome) -> None:
        self.result.outcomes[tid] = outcome
        if outcome.action in ("failed", "skipped"):
            self.digests[tid] = None

    # ------------------------------------------------------------------ one target
    async def _make(self, target: Target) -> Outcome:
        """Make the target; a generated clip that fails review is made again while allowed."""
        spent = 0.0
        while True:
            outcome = await self._make_once(target)
            spent += outcome.cost_usd
            if not await self._retry_after_review(target, outcome):
                outcome.cost_usd = spent
                return outcome

    async def _retry_after_review(self, target: Target, outcome: Outcome) -> bool:
        """Review a just-generated clip; on failure reject the take and say whether to make
        another (within the retry count and budget)."""
        review = self.options.review
        if review is None or not isinstance(target, ClipTarget) or outcome.action != "generated":
            return False
        record = await asyncio.to_thread(review, target)
        status = outcome.status
        assert status is not None and status.key is not None
        self.ctx.state.record_review(target=target.id, key=status.key, digest=str(self.digests[target.id]),
                                     result=record)
        failed = [name for name, check in record.get("checks", {}).items() if not check.get("passed")]
        self.ctx.report("reviewed", target.id, passed=record["passed"], failed=failed)
        if self.ctx.on_review is not None:
            self.ctx.on_review(target, record)
        if record["passed"]:
            return False
        if self._stopping or self._retries.get(target.id, 0) >= self.options.retry_failed:
            self.result.review_failed.append(target.clip_id)
            return False
        estimate = target.estimate_usd or 0.0
        budget = self.options.retry_budget
        if budget is not None and self._retry_spent + estimate > budget + 1e-9:
            self.ctx.report("notice", target.id, message=f"{target.clip_id} failed review; not retried: "
                            f"another take (${estimate:.2f}) would pass the budget")
            self.result.review_failed.append(target.clip_id)
            return False
        from aivpbuild.takes import reject_current

        self._retries[target.id] = self._retries.get(target.id, 0) + 1
        self._retry_spent += estimate
        reject_current(self.ctx.cache, self.ctx.lock, target.id, status.key,
                       f"review failed: {', '.join(failed)}")
        self.ctx.report("notice", target.id, message=f"{target.clip_id} failed review "
                        f"({', '.join(failed)}): making take {self._retries[target.id] + 1}")
        return True

    async def _make_once(self, target: Target) -> Outcome:
        status = self.evaluator.evaluate(target, self.digests, forced=target.id in self.options.forced)
        selected = self.ctx.selected is None or target.id in self.ctx.selected
        if status.state == UP_TO_DATE or (status.state == MODIFIED and not status.needs_work):
            self.digests[target.id] = status.digest
            if status.state == MODIFIED:
                self.ctx.report("notice", target.id, message=f"{target.output} was modified outside "
                                "aivpbuild; keeping it (use -B to regenerate)")
            return Outcome(target.id, "up to date" if status.state == UP_TO_DATE else "kept", status)
        if not selected:
            self.digests[target.id] = status.digest
            return Outcome(target.id, "not selected", status)
        if self._stopping:
            raise asyncio.CancelledError
        async with self._limit(None):
            if status.state == RESTORABLE and status.digest:
                self._restore(target, status.digest)
                take = status.action.take if status.action else None
                outcome = Outcome(target.id, "restored", status)
                if take and float(take.metadata.get("cost_usd") or 0.0) > 0:
                    self._spend_saved(target, status, take.metadata)
                self._record_done(target, status, outcome, take.metadata if take else {})
                self.ctx.report("restored", target.id)
                return outcome
            self.ctx.report("started", target.id, state=status.label)
            # A provider slot is held until the output is stored: with concurrency 1 no new paid
            # submit can be on the wire while a finished one is still being secured.
            async with self._slot(target):
                if isinstance(target, ClipTarget):
                    tmp, meta, job_id = await self._generate(target, status)
                    action = "generated"
                elif isinstance(target, FrameTarget):
                    tmp, meta, job_id = await self._extract(target), {}, None
                    action = "extracted"
                else:
                    tmp, meta, job_id = await self._assemble(target), {}, None
                    action = "assembled"
                crash_point("before-store")
                await self._store(target, status, tmp, meta)
                # Only now is the paid result durable (cache object + take record): closing
                # the journal entry earlier would let a crash in between pay for it again. The
                # entry is closed and the spend recorded in one commit, so neither is lost.
                with self.ctx.state.transaction():
                    self._journal(job_id, "fetched")
                    if job_id is not None and isinstance(target, ClipTarget):  # a paid job: the ledger
                        self.ctx.state.record_spend(
                            target=target.id, key=status.key or "", provider=target.request.provider,
                            model=target.request.endpoint, request_id=meta.get("request_id"),
                            estimate_usd=target.estimate_usd, actual_usd=meta.get("cost_usd"),
                            outcome="succeeded", billed=True)
            outcome = Outcome(target.id, action, status, cost_usd=float(meta.get("cost_usd") or 0.0))
            self._record_done(target, status, outcome, meta)
            self.ctx.report("done", target.id, action=action)
            return outcome

    def _limit(self, provider: str | None) -> contextlib.AbstractAsyncContextManager[Any]:
        if provider is None:
            return self._global or contextlib.nullcontext()
        return self._provider_limits[provider]

    def _slot(self, target: Target) -> contextlib.AbstractAsyncContextManager[Any]:
        """The per-provider concurrency limit a clip target works under."""
        if not isinstance(target, ClipTarget):
            return contextlib.nullcontext()
        name = target.request.provider
        if name not in self._provider_limits:
            self._provider_limits[name] = asyncio.Semaphore(self.ctx.providers(name).default_concurrency)
        return self._provider_limits[name]

    def _scratch(self, name: str, suffix: str) -> Path:
        scratch = self.ctx.root / ".aivp" / "tmp"
        scratch.mkdir(parents=True, exist_ok=True)
        return scratch / f"{name.replace(':', '_').replace('@', '_')}-{time.monotonic_ns()}{suffix}"

    # ------------------------------------------------------------------ outputs
    def _restore(self, target: Target, digest: str) -> None:
        output = self.ctx.root / target.output
        self._save_modified(target)
        self.ctx.cache.restore(digest, output)
        self.ctx.state.remember_digest(self.ctx.root, target.output, digest)
        self.digests[target.id] = digest

    def _save_modified(self, target: Target) -> None:
        digest = keep_local_edit(self.ctx.root, target, self.ctx.state, self.ctx.cache, self.ctx.lock)
        if digest is not None:
            self.ctx.report("notice", target.id, message=f"{target.output} had local changes; "
                            f"they are kept in the cache as object {digest[:12]}")

    async def _store(self, target: Target, status: TargetStatus, tmp: Path, meta: dict[str, Any]) -> None:
        """Check a generated clip against its request, cache the made file (object + take
        record), then copy it into place: the file work runs in one thread hop so many finishing
        jobs do not queue up behind each other's hashing. A clip that fails the check is removed."""
        assert status.key is not None and status.material is not None
        key, material = status.key, status.material
        self._save_modified(target)

        def store() -> str:
            from aivpbuild.fsutil import sha256_file

            if isinstance(target, ClipTarget):
                try:
                    self._verify(target, tmp)
                except BaseException:
                    tmp.unlink(missing_ok=True)
                    raise
            size = tmp.stat().st_size
            digest = sha256_file(tmp)
            self.ctx.cache.put_file(tmp, digest, move=True)
            take = Take(digest=digest, size=size, created_at=utc_now(), metadata=meta)
            status.action = self.ctx.cache.record(key, material, take)
            self.ctx.cache.restore(digest, self.ctx.root / target.output)
            return digest

        digest = await asyncio.to_thread(store)
        self.ctx.state.remember_digest(self.ctx.root, target.output, digest)
        self.digests[target.id] = digest

    def _record_done(self, target: Target, status: TargetStatus, outcome: Outcome,
                     meta: dict[str, Any]) -> None:
        digest = self.digests[target.id]
        output = self.ctx.root / target.output
        take = {"take": status.action.current + 1} if isinstance(target, ClipTarget) and status.action else {}
        self.ctx.lock.set(target.id, lock_entry(key=status.key, output=target.output, digest=digest,
                                                size=output.stat().st_size, meta=meta, built_at=utc_now(),
                                                **take))
        self.ctx.lock.save(throttle=True)
        self.ctx.on_target_done(target, status, outcome, {**meta, **take, "digest": digest})

    # ------------------------------------------------------------------ makers
    async def _extract(self, target: FrameTarget) -> Path:
        from aivpbuild.media.frames import extract_frame

        clip = self.ctx.root / self.ctx.plan.targets[target.upstream["clip"]].output
        tmp = self._scratch(target.id, ".png")
        await asyncio.to_thread(extract_frame, clip, target.which, tmp)  # type: ignore[arg-type]
        return tmp

    async def _assemble(self, target: EditTarget) -> Path:
        from aivpbuild.media.assemble import assemble

        clips = [self.ctx.root / self.ctx.plan.targets[t].output for t in target.upstream.values()]
        tmp = self._scratch(target.id, ".mp4")
        await asyncio.to_thread(assemble, clips, tmp)
        return tmp

    async def _generate(self, target: ClipTarget,
                        status: TargetStatus) -> tuple[Path, dict[str, Any], int | None]:
        assert status.key is not None
        request = self._take_request(target, status)
        provider = self.ctx.providers(request.provider)
        handle, job_id = await self._submit_or_resume(target, request, provider, status.key, status.material)
        if provider.paid:
            self._inflight[target.id] = (provider, handle, job_id)
        outcome = await provider.wait(handle, lambda s: self._on_status(target.id, s))
        self._inflight.pop(target.id, None)
        if isinstance(outcome, Failed):
            self._journal(job_id, "failed", outcome.error)
            self._spend_failed(target, status.key, handle, billed=outcome.billed)
            kind = f" ({outcome.error_type})" if outcome.error_type else ""
            raise TargetFailed(f"{request.provider} job {handle.request_id} failed{kind}: {outcome.error}")
        result = await provider.result(handle)
        self._journal(job_id, "completed")
        tmp = self._scratch(target.id, ".mp4")
        try:
            await provider.fetch(result, tmp)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        cost = result.cost_usd if result.cost_usd is not None else target.estimate_usd
        meta = {
            "provider": request.provider, "model": request.endpoint, "mode": request.mode,
            "request_id": handle.request_id, "seed": result.seed if result.seed is not None else request.seed,
            "video_url": result.video_url if provider.paid else None,
            "cost_usd": cost if provider.paid else 0.0, "built_at": utc_now(),
            **{k: v for k, v in result.metadata.items() if k in ("notes",)},
        }
        return tmp, meta, job_id

    def _take_request(self, target: ClipTarget, status: TargetStatus) -> GenerationRequest:
        """The clip's request, with a new seed when this is a new take of an unchanged clip (its
        current take rejected, or a reroll): the same seed would make the same video again."""
        from aivpbuild.staleness import REJECTED
        from aivpbuild.takes import new_seed

        rerolled = target.id in self.options.rerolls
        previous = self.ctx.cache.action(status.key) if status.key else None
        if not (rerolled or status.state == REJECTED or (previous and previous.take.rejected)):
            return target.request
        seed = self.options.rerolls.get(target.id)
        if seed is None:
            seed = new_seed(str(status.key), len(previous.takes) + 1 if previous else 1)
        return target.request.with_seed(seed)

    async def _submit_or_resume(self, target: ClipTarget, request: GenerationRequest, provider: Provider,
                                key: str, material: dict[str, Any] | None) -> tuple[JobHandle, int | None]:
        if provider.paid:
            for job in self.ctx.state.open_jobs(key):
                if job.handle:
                    self.ctx.report("resumed", target.id, request_id=job.request_id)
                    return JobHandle.from_json(job.handle), job.id
                if not self.options.resubmit_uncertain:
                    raise TargetFailed(
                        f"a {job.provider} job for this clip was being submitted when a previous run "
                        f"stopped ({time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(job.created_at))}); "
                        "it may have been accepted and billed. Check the provider's dashboard, then "
                        "run again with --resubmit-uncertain to submit anew (see `aivpbuild jobs`)."
                    )
                self.ctx.state.journal_state(job.id, "abandoned", "resubmitted by the user")
        if self._stopping:
            raise asyncio.CancelledError
        uploaded: dict[Path, str] = {}
        for path in request.input_files():
            uploaded[path] = await self._upload(provider, path)
        payload = provider.build_input(request, uploaded)
        if not provider.paid:
            return await provider.submit(request.endpoint, payload), None
        # intent → submit → request id is one unit that Ctrl-C must not cut in half: it runs as
        # its own task, shielded from the target's cancellation and awaited before shutdown.
        critical = asyncio.ensure_future(self._journaled_submit(target, request, provider, key, material,
                                                                payload))
        self._critical.add(critical)
        critical.add_done_callback(self._critical.discard)
        return await asyncio.shield(critical)

    async def _journaled_submit(self, target: ClipTarget, request: GenerationRequest, provider: Provider,
                                key: str, material: dict[str, Any] | None,
                                payload: dict[str, Any]) -> tuple[JobHandle, int | None]:
        job_id = self.ctx.state.journal_intent(
            key=key, target=target.id, provider=request.provider, endpoint=request.endpoint,
            input_digest=sha256_bytes(canonical_json(payload).encode()),
            estimate_usd=target.estimate_usd, material=material,
        )
        crash_point("after-intent")
        try:
            handle = await provider.submit(request.endpoint, payload)
        except ProviderError as exc:
            if not getattr(exc, "uncertain", False):
                self.ctx.state.journal_state(job_id, "failed", str(exc))
            raise
        crash_point("after-submit")
        self.ctx.state.journal_submitted(job_id, handle.request_id, handle.to_json())
        crash_point("after-journal")
        self.ctx.report("submitted", target.id, request_id=handle.request_id)
        return handle, job_id

    async def _upload(self, provider: Provider, path: Path) -> str:
        if not provider.paid:
            return str(path)
        rel = path.relative_to(self.ctx.root).as_posix()
        digest = self.ctx.state.digest(self.ctx.root, rel)
        url = self.ctx.state.upload_url(provider.name, digest)
        if url is None:
            url = await provider.upload(path)
            self.ctx.state.remember_upload(provider.name, digest, url)
        return url

    def _verify(self, target: ClipTarget, path: Path) -> None:
        from aivpbuild.media.probe import verify

        request = target.request
        local = request.provider == "local"
        try:  # remote models pick their own frame rate and rounding: check what they promise
            verify(path, width=request.width, height=request.height, frames=request.frame_count,
                   fps=request.fps, audio=request.audio if local else None,
                   frame_tolerance=0, exact_size=local)
        except MediaError as exc:
            raise TargetFailed(f"{request.provider} output for {target.clip_id} is not what was asked: {exc}") from None

    def _on_status(self, tid: str, status: JobStatus) -> None:
        crash_point("while-polling")
        if isinstance(status, Queued):
            self.ctx.report("queued", tid, position=status.position)
        elif isinstance(status, Running):
            self.ctx.report("running", tid, logs=list(status.logs))
        elif isinstance(status, Completed):
            self.ctx.report("completed", tid)

    def _journal(self, job_id: int | None, state: str, error: str | None = None) -> None:
        if job_id is not None:
            self.ctx.state.journal_state(job_id, state, error)

    def _spend_failed(self, target: ClipTarget, key: str, handle: JobHandle, *, billed: bool) -> None:
        """A paid job that failed goes into the ledger too (billed when the provider bills it)."""
        if not self.ctx.providers(target.request.provider).paid:
            return
        self.ctx.state.record_spend(
            target=target.id, key=key, provider=target.request.provider, model=target.request.endpoint,
            request_id=handle.request_id, estimate_usd=target.estimate_usd, actual_usd=None,
            outcome="failed", billed=billed,
        )

    def _spend_saved(self, target: Target, status: TargetStatus, meta: dict[str, Any]) -> None:
        """A paid output restored from the cache: record what the cache saved."""
        self.ctx.state.record_spend(
            target=target.id, key=status.key or "", provider=str(meta.get("provider")),
            model=str(meta.get("model")), request_id=meta.get("request_id"),
            estimate_usd=float(meta.get("cost_usd") or 0.0), actual_usd=0.0,
            outcome="cache_hit", billed=False,
        )

    async def _collect_orphan(self, job: Any) -> None:
        """A paid job whose clip changed since: finish it and keep its result in the cache (it
        was paid for; reverting the edit restores it for free)."""
        from aivpbuild.fsutil import sha256_file
        from aivpbuild.media.probe import probe

        tid = job.target
        try:
            provider = self.ctx.providers(job.provider)
            handle = JobHandle.from_json(job.handle)
            outcome = await provider.wait(handle)
            if isinstance(outcome, Failed):
                self._journal(job.id, "failed", outcome.error)
                return
            result = await provider.result(handle)
            tmp = self._scratch(tid, ".mp4")
            await provider.fetch(result, tmp)
            await asyncio.to_thread(probe, tmp)
            digest, size = sha256_file(tmp), tmp.stat().st_size
            self.ctx.cache.put_file(tmp, digest, move=True)
            if job.material is not None:
                meta = {"provider": job.provider, "model": job.endpoint, "request_id": job.request_id,
                        "seed": result.seed, "video_url": result.video_url,
                        "cost_usd": result.cost_usd if result.cost_usd is not None else job.estimate_usd,
                        "built_at": utc_now()}
                self.ctx.cache.record(job.key, job.material, Take(digest, size, utc_now(), meta))
            self._journal(job.id, "fetched")
            self.ctx.report("notice", tid, message=f"saved the result of the earlier {job.provider} job "
                            f"{job.request_id} for {tid} in the cache (its clip has changed since)")
        except asyncio.CancelledError:
            raise
        except AivpError as exc:
            self.ctx.report("notice", tid, message=f"could not collect the earlier job {job.request_id}: {exc}")
