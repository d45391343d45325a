"""The ``aivpbuild`` command line: thin click commands over :class:`aivpbuild.api.Project`.

Heavy modules (pydantic, networkx, av, httpx) are imported inside the commands, so
``aivpbuild --help`` starts instantly.
"""

from __future__ import annotations

import contextlib
import functools
import json
import sys
from collections.abc import Callable, Iterator
from typing import Any

import click

from aivpbuild import __version__

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


#: Options that take a value, so the word after them is never mistaken for a command.
VALUE_OPTIONS = {"-C", "-f", "--profile", "-j", "--jobs", "--max-cost", "--format", "-o", "--output",
                 "--width", "--name", "--storyboard"}


class DefaultBuildGroup(click.Group):
    """``aivpbuild [TARGETS] [OPTIONS]`` means ``aivpbuild build ...``, and a command may come
    after the common options (``aivpbuild -C film status``)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] in ("-h", "--help", "--version"):
            return super().parse_args(ctx, args)
        skip = False
        for i, arg in enumerate(args):
            if skip:
                skip = False
            elif arg in VALUE_OPTIONS:
                skip = True
            elif not arg.startswith("-"):
                if arg in self.commands:
                    return super().parse_args(ctx, [arg, *args[:i], *args[i + 1:]])
                break
        return super().parse_args(ctx, ["build", *args])


def project_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """-C, -f, --profile, --json and -v, accepted by every project command."""

    @click.option("-C", "directory", default=".", metavar="DIR", help="Project directory.")
    @click.option("-f", "manifest", default=None, metavar="FILE", help="Manifest (default project.aivp.yaml).")
    @click.option("--profile", default=None, metavar="NAME", help="Profile to overlay on defaults.")
    @click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
    @click.option("-v", "--verbose", is_flag=True, help="More detail; tracebacks on errors.")
    @functools.wraps(func)
    def wrapper(**kwargs: Any) -> Any:
        click.get_current_context().meta["verbose"] = kwargs["verbose"]
        return func(**kwargs)

    return wrapper


def load(directory: str, manifest: str | None, profile: str | None) -> Any:
    from aivpbuild.api import Project

    return Project.load(directory, manifest, profile)


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str, ensure_ascii=False))


@click.group(cls=DefaultBuildGroup, context_settings=CONTEXT)
@click.version_option(__version__, prog_name="aivpbuild")
def cli() -> None:
    """make for AI video: build only the clips that are missing or stale, pay once.

    With no command, `aivpbuild [TARGETS]` builds (see `aivpbuild build --help`).
    """


@cli.command()
@click.argument("targets", nargs=-1)
@click.option("-n", "--dry-run", is_flag=True, help="Show what would be made, and why; make nothing.")
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=None, help="Targets worked at once.")
@click.option("-k", "--keep-going", is_flag=True, help="Continue independent targets after a failure.")
@click.option("-B", "--force", is_flag=True, help="Regenerate the selected targets even if up to date.")
@click.option("--max-cost", type=click.FloatRange(min=0), default=None, metavar="USD",
              help="Refuse (exit 3) a build estimated above USD.")
@click.option("-y", "--yes", is_flag=True, help="Do not ask before an expensive build.")
@click.option("--resubmit-uncertain", is_flag=True,
              help="Resubmit jobs a crashed run may or may not have submitted (may pay twice).")
@click.option("--cancel-on-interrupt", is_flag=True,
              help="On Ctrl-C, cancel submitted paid jobs instead of leaving them for the next run.")
@click.option("--review", "review_clips", is_flag=True,
              help="Review each generated clip as it arrives (see `aivpbuild review`).")
@click.option("--retry-failed", type=click.IntRange(min=0), default=0, metavar="N",
              help="With --review: give a failed clip up to N new takes (within the budget).")
@project_options
def build(targets: tuple[str, ...], dry_run: bool, jobs: int | None, keep_going: bool,
          force: bool, max_cost: float | None, yes: bool, resubmit_uncertain: bool,
          cancel_on_interrupt: bool, review_clips: bool, retry_failed: int,
          directory: str, manifest: str | None, profile: str | None, as_json: bool,
          verbose: bool) -> None:
    """Build TARGETS (ids, globs, `id+` for downstream); all when none are given."""
    project = load(directory, manifest, profile)
    if dry_run:
        show_status(project, project.status(targets, force=force), as_json, dry_run=True)
        return
    with reporting(as_json, verbose, total=len(project.order)) as reporter:
        result = project.build(targets, jobs=jobs, keep_going=keep_going, force=force,
                               report=reporter, resubmit_uncertain=resubmit_uncertain,
                               max_cost=max_cost, cancel_on_interrupt=cancel_on_interrupt,
                               confirm=None if yes else terminal_confirm(), review=review_clips,
                               retry_failed=retry_failed)
    summarize(result, as_json)


def terminal_confirm() -> Any:
    """A yes/no question on a terminal; None when not interactive (CI never blocks)."""
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        return None

    def ask(total: float, expensive: str) -> bool:
        click.echo(f"This build is estimated at ${total:.2f} (most expensive: {expensive}).")
        return click.confirm("Go ahead?", default=False)

    return ask


@contextlib.contextmanager
def reporting(as_json: bool, verbose: bool, total: int) -> Iterator[Any]:
    """The build's reporter: JSON lines, a live display on a terminal, else plain lines."""
    from aivpbuild.reporting import JsonReporter, PlainReporter, RichReporter

    if as_json:
        yield JsonReporter()
    elif sys.stdout.isatty():
        display = RichReporter(total)
        try:
            yield display
        finally:
            display.close()
    else:
        yield PlainReporter(verbose=verbose)


def summarize(result: Any, as_json: bool) -> None:
    from aivpbuild.errors import BuildFailed, Interrupted

    counts: dict[str, int] = {}
    for outcome in result.outcomes.values():
        counts[outcome.action] = counts.get(outcome.action, 0) + 1
    if as_json:
        click.echo(json.dumps({"event": "summary", "counts": counts,
                               "failed": result.failed, "skipped": result.skipped,
                               "review_failed": result.review_failed}))
    else:
        parts = [f"{n} {action}" for action, n in sorted(counts.items()) if action != "not selected"]
        click.echo("build finished: " + (", ".join(parts) or "nothing to do"))
    if result.interrupted:
        raise Interrupted("interrupted; run `aivpbuild` again to resume (journaled jobs are picked up)")
    if result.failed:
        skipped = f"; skipped because of them: {', '.join(result.skipped)}" if result.skipped else ""
        raise BuildFailed(f"{len(result.failed)} target(s) failed: {', '.join(result.failed)}{skipped}")
    if result.review_failed:
        names = ", ".join(result.review_failed)
        raise BuildFailed(f"{len(result.review_failed)} clip(s) failed review: {names} "
                          "(`aivpbuild takes ID`, then `pick`, `reject` or `reroll`)")


@cli.command()
@click.argument("targets", nargs=-1)
@click.option("-B", "--force", is_flag=True, help="Show the selected targets as forced.")
@project_options
def status(targets: tuple[str, ...], force: bool, directory: str, manifest: str | None,
           profile: str | None, as_json: bool, verbose: bool) -> None:
    """What is stale, why, and what it would cost."""
    project = load(directory, manifest, profile)
    show_status(project, project.status(targets, force=force), as_json,
                warnings=project.storyboard_checks())


def show_status(project: Any, statuses: list[Any], as_json: bool, dry_run: bool = False,
                warnings: list[str] | None = None) -> None:
    work = [s for s in statuses if s.needs_work]
    total = sum(s.estimate_usd or 0.0 for s in work)
    if as_json:
        emit_json({"targets": [s.to_json() for s in statuses], "notices": project.notices(grouped=False),
                   "warnings": warnings or [], "stale": len(work), "estimate_usd": round(total, 4)})
        return
    for notice in project.notices():
        click.echo(f"note: {notice}", err=True)
    for warning in warnings or []:
        click.echo(warning, err=True)
    width = max((len(s.target) for s in statuses), default=10)
    for s in statuses:
        cost = f"  ${s.estimate_usd:.2f}" if s.needs_work and s.estimate_usd else ""
        restore = "  $0.00 (cache)" if s.state == "restorable" else ""
        click.echo(f"{s.target:<{width}}  {s.label}{cost}{restore}")
    restorable = sum(s.state == "restorable" for s in statuses)
    verb = "would make" if dry_run else "to make"
    click.echo(f"{len(work)} {verb}, {restorable} to restore, "
               f"{len(statuses) - len(work) - restorable} up to date; estimated cost ${total:.2f}")


@cli.command("compile")
@click.option("--storyboard", "storyboard", default=None, metavar="DIR",
              help="Storyboard directory (default storyboard/storyboard-final).")
@click.option("-n", "--dry-run", is_flag=True, help="Show what would change; write nothing.")
@click.option("--diff", "show_diff", is_flag=True, help="Print the manifest's unified diff; write nothing.")
@click.option("--check", is_flag=True, help="Only check the inputs (keyframes, portraits, scene sheets, durations).")
@click.option("--strict", is_flag=True, help="Any problem is an error (exit 2); nothing is written.")
@project_options
def compile_command(storyboard: str | None, dry_run: bool, show_diff: bool, check: bool, strict: bool,
                    directory: str, manifest: str | None, profile: str | None, as_json: bool,
                    verbose: bool) -> None:
    """Storyboard markdown -> project.aivp.yaml, keeping every hand edit (three-way merge)."""
    from aivpbuild.compile import compile_storyboard

    report = compile_storyboard(directory, storyboard_dir=storyboard, manifest=manifest,
                                dry_run=dry_run or show_diff, check=check, strict=strict)
    if as_json:
        emit_json(compile_json(report))
    else:
        show_compile(report, show_diff)


def compile_json(report: Any) -> dict[str, Any]:
    problems = [{"file": str(p.file), "line": p.line, "severity": p.severity, "message": p.message}
                for p in report.problems]
    result = report.result
    if result is None:
        return {"problems": problems}
    return {"manifest": str(result.manifest), "written": result.written, "changes": result.changes,
            "conflicts": result.conflicts, "kept": result.kept, "problems": problems,
            "diff": result.diff}


def show_compile(report: Any, show_diff: bool) -> None:
    for problem in report.problems:
        click.echo(report.describe(problem), err=True)
    result = report.result
    if result is None:
        click.echo(f"checks: {len(report.problems)} problem(s)" if report.problems else "checks: all good")
        return
    if show_diff:
        click.echo(result.diff, nl=False)
        return
    for change in result.changes:
        click.echo(f"  {change}")
    for conflict in result.conflicts:
        click.echo(f"conflict: {conflict}")
    for kept in result.kept:
        click.echo(f"kept: {kept}")
    name = result.manifest.name if result.manifest else "the manifest"
    summary = f"{len(result.changes)} change(s), {len(result.conflicts)} conflict(s), {len(report.problems)} warning(s)"
    if result.written:
        click.echo(f"wrote {name}: {summary}")
    elif result.text and result.diff:
        click.echo(f"dry run: would write {name}: {summary}")
    else:
        click.echo(f"{name} is up to date: {summary}")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("-C", "directory", default=None, metavar="DIR",
              help="Include the `models:` of this project's manifest.")
def models(as_json: bool, directory: str | None) -> None:
    """The model catalogue: modes, durations, resolutions, audio and price per 5 s."""
    from aivpbuild.catalog import format_models_table, load_catalog, models_table

    overrides = load(directory, None, None).manifest.models if directory else None
    rows = models_table(load_catalog(overrides or None))
    emit_json(rows) if as_json else click.echo(format_models_table(rows))


@cli.command("contact-sheet")
@click.option("-o", "--output", default=None, metavar="PNG", help="Where to write it.")
@click.option("--width", default=240, show_default=True, help="Thumbnail width in pixels.")
@project_options
def contact_sheet(output: str | None, width: int, directory: str, manifest: str | None,
                  profile: str | None, as_json: bool, verbose: bool) -> None:
    """First, middle and last frame of every built clip in one PNG (video/contact-sheet.png)."""
    from pathlib import Path

    path = load(directory, manifest, profile).contact_sheet(Path(output) if output else None, thumb_width=width)
    click.echo(f"wrote {path}")


@cli.command("report")
@click.option("-o", "--output", default=None, metavar="HTML", help="Where to write it.")
@click.option("--open", "open_page", is_flag=True, help="Open the page in a web browser.")
@project_options
def report_command(output: str | None, open_page: bool, directory: str, manifest: str | None,
                   profile: str | None, as_json: bool, verbose: bool) -> None:
    """The HTML review page video/review.html: players, frames, prompts, takes, review flags."""
    from pathlib import Path

    path = load(directory, manifest, profile).report(Path(output).resolve() if output else None)
    emit_json({"page": str(path)}) if as_json else click.echo(f"wrote {path}")
    if open_page:
        import webbrowser

        webbrowser.open(path.as_uri())


@cli.command()
@click.argument("targets", nargs=-1)
@project_options
def review(targets: tuple[str, ...], directory: str, manifest: str | None, profile: str | None,
           as_json: bool, verbose: bool) -> None:
    """Technical checks of each built clip; exits 1 when any fails (for CI)."""
    from aivpbuild.errors import BuildFailed

    results = load(directory, manifest, profile).review(targets)
    if as_json:
        emit_json(results)
    else:
        for clip_id, record in results.items():
            failed = [f"{name} ({c['message']})" for name, c in record["checks"].items() if not c["passed"]]
            click.echo(f"{clip_id}: " + ("ok" if record["passed"] else "FAILED " + "; ".join(failed)))
    bad = [clip_id for clip_id, record in results.items() if not record["passed"]]
    if bad:
        raise BuildFailed(f"review failed for {', '.join(bad)}")


@cli.command()
@project_options
def cost(directory: str, manifest: str | None, profile: str | None, as_json: bool, verbose: bool) -> None:
    """What was spent (per clip, per model, total) and what the cache saved."""
    from aivpbuild.spend import format_spend

    report = load(directory, manifest, profile).cost()
    emit_json(report) if as_json else click.echo(format_spend(report))


@cli.command()
@click.argument("clip")
@project_options
def takes(clip: str, directory: str, manifest: str | None, profile: str | None, as_json: bool,
          verbose: bool) -> None:
    """List CLIP's takes: number, seed, model, cost, review, date (* marks the current one)."""
    found = load(directory, manifest, profile).takes(clip)
    if as_json:
        emit_json([t.to_json() for t in found])
        return
    if not found:
        click.echo(f"{clip} has no takes yet (build it first)")
        return
    click.echo(f"  {'take':>4}  {'seed':>10}  {'model':<40} {'cost':>7}  {'review':<7} built")
    for t in found:
        mark = "*" if t.current else " "
        review = t.review or "-"
        note = f"  rejected{': ' + t.rejected if t.rejected else ''}" if t.rejected is not None else ""
        click.echo(f"{mark} {t.number:>4}  {t.seed if t.seed is not None else '-':>10}  {t.model or '-'!s:<40} "
                   f"${t.cost_usd:>6.2f}  {review:<7} {t.built_at}{note}")


@cli.command()
@click.argument("clip")
@click.argument("number", type=click.IntRange(min=1))
@project_options
def pick(clip: str, number: int, directory: str, manifest: str | None, profile: str | None,
         as_json: bool, verbose: bool) -> None:
    """Make take NUMBER of CLIP current, from the cache (no provider call)."""
    take = load(directory, manifest, profile).pick(clip, number)
    emit_json(take.to_json()) if as_json else click.echo(
        f"{clip}: take {take.number} is current (seed {take.seed}); run `aivpbuild` to update what uses it")


@cli.command()
@click.argument("clip")
@click.option("--reason", default="", help="Why (kept with the take).")
@project_options
def reject(clip: str, reason: str, directory: str, manifest: str | None, profile: str | None,
           as_json: bool, verbose: bool) -> None:
    """Reject CLIP's current take: the next build makes a new take with a new seed."""
    number = load(directory, manifest, profile).reject(clip, reason)
    emit_json({"clip": clip, "rejected": number, "reason": reason}) if as_json else click.echo(
        f"{clip}: take {number} rejected; the next build makes a new take (`aivpbuild pick {clip} "
        f"{number}` takes it back)")


@cli.command()
@click.argument("clip")
@click.option("--seed", type=int, default=None, help="The new take's seed (default: a fresh one).")
@click.option("--max-cost", type=click.FloatRange(min=0), default=None, metavar="USD",
              help="Refuse (exit 3) if the new take is estimated above USD.")
@click.option("-y", "--yes", is_flag=True, help="Do not ask before an expensive take.")
@project_options
def reroll(clip: str, seed: int | None, max_cost: float | None, yes: bool, directory: str,
           manifest: str | None, profile: str | None, as_json: bool, verbose: bool) -> None:
    """Make a new take of CLIP now; the current one stays restorable (`pick`)."""
    project = load(directory, manifest, profile)
    with reporting(as_json, verbose, total=1) as reporter:
        result = project.reroll(clip, seed=seed, report=reporter, max_cost=max_cost,
                                confirm=None if yes else terminal_confirm())
    summarize(result, as_json)


@cli.group(invoke_without_command=True)
@project_options
@click.pass_context
def jobs(ctx: click.Context, directory: str, manifest: str | None, profile: str | None,
         as_json: bool, verbose: bool) -> None:
    """In-flight and journaled remote jobs (`jobs cancel ID|--all` to cancel)."""
    ctx.obj = (directory, manifest, profile, as_json)
    if ctx.invoked_subcommand is not None:
        return
    import time

    records = load(directory, manifest, profile).jobs()
    if as_json:
        emit_json([r.__dict__ for r in records])
        return
    if not records:
        click.echo("no journaled jobs")
        return
    click.echo(f"{'id':>4}  {'target':<16} {'provider':<10} {'state':<10} {'age':>8}  {'est.':>7}  request id")
    for r in records:
        age = f"{(time.time() - r.created_at) / 60:.0f} min"
        est = f"${r.estimate_usd:.2f}" if r.estimate_usd is not None else "?"
        note = r.request_id or f"POSSIBLY SUBMITTED {time.strftime('%H:%M:%S', time.localtime(r.created_at))}"
        click.echo(f"{r.id:>4}  {r.target:<16} {r.provider:<10} {r.state:<10} {age:>8}  {est:>7}  {note}")


@jobs.command("cancel")
@click.argument("ids", nargs=-1, type=int)
@click.option("--all", "all_open", is_flag=True, help="Cancel every open journaled job.")
@click.pass_obj
def jobs_cancel(obj: tuple[str, str | None, str | None, bool], ids: tuple[int, ...], all_open: bool) -> None:
    """Cancel journaled jobs by id."""
    if not ids and not all_open:
        raise click.UsageError("give job ids or --all")
    for line in load(*obj[:3]).cancel_jobs(ids, all_open=all_open):
        click.echo(line)


@cli.command()
@click.option("--format", "fmt", type=click.Choice(["mermaid", "dot"]), default="mermaid")
@project_options
def graph(fmt: str, directory: str, manifest: str | None, profile: str | None,
          as_json: bool, verbose: bool) -> None:
    """Print the target graph (mermaid or Graphviz dot)."""
    click.echo(load(directory, manifest, profile).graph_text(fmt), nl=False)


@cli.command()
@click.option("--cache", "with_cache", is_flag=True, help="Also delete the local cache (paid outputs!).")
@project_options
def clean(with_cache: bool, directory: str, manifest: str | None, profile: str | None,
          as_json: bool, verbose: bool) -> None:
    """Remove generated outputs under video/ (they stay restorable from the cache)."""
    removed = load(directory, manifest, profile).clean(cache=with_cache)
    if as_json:
        emit_json({"removed": removed})
    else:
        click.echo("\n".join(f"removed {r}" for r in removed) or "nothing to remove")


@cli.command()
@click.argument("directory", default=".")
@click.option("--name", default=None, help="Project name (default: the directory name).")
def init(directory: str, name: str | None) -> None:
    """Create a new project: a starter manifest and the folders it uses."""
    from aivpbuild.scaffold import init_project

    path = init_project(directory, name)
    click.echo(f"created {path}\nnext: edit it, then run `aivpbuild status` and `aivpbuild`")


@cli.command()
@click.option("-o", "--output", default=None, metavar="FILE", help="Write the schema to FILE.")
@click.option("--write", is_flag=True, help="Write schemas/project.aivp.schema.json of this checkout.")
def schema(output: str | None, write: bool) -> None:
    """Print the manifest's JSON Schema (for editor validation and completion)."""
    from pathlib import Path

    from aivpbuild.fsutil import atomic_write_text
    from aivpbuild.manifest import schema_text

    text = schema_text()
    if write:
        output = str(Path(__file__).resolve().parents[1] / "schemas" / "project.aivp.schema.json")
    if output:
        atomic_write_text(Path(output), text)
        click.echo(f"wrote {output}")
    else:
        click.echo(text, nl=False)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: maps errors to exit codes, no traceback unless -v."""
    from aivpbuild.errors import EXIT_INTERRUPTED, EXIT_USAGE

    args = sys.argv[1:] if argv is None else argv
    verbose = "-v" in args or "--verbose" in args
    try:
        cli.main(args=args, prog_name="aivpbuild", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(EXIT_USAGE)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except Exception as exc:
        sys.exit(report_error(exc, verbose))


def report_error(exc: BaseException, verbose: bool) -> int:
    from aivpbuild.errors import AivpError
    from aivpbuild.secrets import redact

    if verbose:
        import traceback

        click.echo(redact("".join(traceback.format_exception(exc))), err=True)
    if isinstance(exc, AivpError):
        click.echo(redact(f"error: {exc}"), err=True)
        return exc.exit_code
    click.echo(redact(f"internal error: {type(exc).__name__}: {exc}"), err=True)
    if not verbose:
        click.echo("run again with -v for the traceback, and please report it", err=True)
    return 1
