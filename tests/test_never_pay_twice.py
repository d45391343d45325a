"""Never pay twice: real builds against the fake fal.ai are killed (SIGKILL at exact steps, or
Ctrl-C) and re-run; every clip gets built and every prompt was submitted exactly once.

A kill while a submit request is on the wire cannot be told apart from a kill just before it:
such a job is journaled as "possibly submitted" and only resubmitted when the user says so.
The exactly-once tests therefore run one job at a time (no submit is ever mid-flight when the
kill point fires); the parallel test checks that uncertain jobs are reported, not resubmitted.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from aivpbuild.media.probe import probe
from tests.fakes.fal import FalFake
from tests.helpers import write_project

REPO = Path(__file__).resolve().parents[1]
KEY = "fal-crash-test-key"
CLIPS = 20


@pytest.fixture
def fal() -> Iterator[FalFake]:
    with FalFake(key=KEY, queue_seconds=0.05, run_seconds=0.15) as fake:
        yield fake


def project(root: Path, concurrency: int = 1) -> Path:
    return write_project(root, {
        "version": 1, "name": "crash",
        "defaults": {"provider": "fal", "model": "fal-ai/bytedance/seedance/v1.5/pro",
                     "resolution": "480p", "duration": 4, "audio": False},
        "providers": {"fal": {"poll_interval": 0.02, "concurrency": concurrency}},
        "clips": {f"s{i:02d}": {"prompt": f"shot {i}"} for i in range(CLIPS)},
    })


def build(root: Path, fal: FalFake, *args: str, crash: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "FAL_KEY": KEY, "AIVP_FAL_QUEUE_URL": fal.queue_url,
           "AIVP_FAL_REST_URL": fal.rest_url}
    env.pop("AIVP_CRASH_AT", None)
    if crash:
        env["AIVP_CRASH_AT"] = crash
    return subprocess.run([sys.executable, "-m", "aivpbuild", "-C", str(root), "-j", "8", *args],
                          env=env, capture_output=True, text=True, timeout=180)


def assert_all_built_once(root: Path, fal: FalFake) -> None:
    for i in range(CLIPS):
        assert probe(root / f"video/clips/s{i:02d}.mp4").frames == 96
    counts = fal.billable_count()
    assert sorted(counts) == sorted(f"shot {i}" for i in range(CLIPS))
    assert set(counts.values()) == {1}, {k: v for k, v in counts.items() if v != 1}


@pytest.mark.parametrize("crash", ["after-journal:5", "while-polling:12", "mid-download:3", "before-store:4"])
def test_sigkill_then_rerun_pays_once(tmp_path: Path, fal: FalFake, crash: str) -> None:
    root = project(tmp_path / "p")
    killed = build(root, fal, crash=crash)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert 0 < len(fal.ledger) <= CLIPS
    again = build(root, fal)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "resuming journaled job" in again.stdout
    assert_all_built_once(root, fal)
    assert not [p for p in (root / "video/clips").iterdir() if p.name.startswith(".")]


def test_kill_between_intent_and_submit_asks_before_resubmitting(tmp_path: Path, fal: FalFake) -> None:
    root = project(tmp_path / "p")
    killed = build(root, fal, crash="after-intent:4")
    assert killed.returncode == -signal.SIGKILL
    submitted = len(fal.ledger)
    assert submitted == 3
    again = build(root, fal, "-k")
    assert again.returncode == 1
    assert again.stdout.count("may have been accepted and billed") == 1
    assert "may have been accepted and billed" in again.stdout and "--resubmit-uncertain" in again.stdout
    from tests.helpers import run_cli

    jobs = run_cli("jobs", "-C", str(root))
    assert jobs.out.count("POSSIBLY SUBMITTED") == 1
    final = build(root, fal, "--resubmit-uncertain")
    assert final.returncode == 0, final.stdout + final.stderr
    assert submitted < len(fal.ledger)
    assert_all_built_once(root, fal)


def test_parallel_kill_reports_in_flight_submits_instead_of_paying_twice(tmp_path: Path, fal: FalFake) -> None:
    root = project(tmp_path / "p", concurrency=8)
    killed = build(root, fal, crash="while-polling:3")
    assert killed.returncode == -signal.SIGKILL
    again = build(root, fal, "-k")
    uncertain = again.stdout.count("may have been accepted and billed")
    assert (again.returncode == 0) == (uncertain == 0)
    final = build(root, fal, "--resubmit-uncertain")
    assert final.returncode == 0, final.stdout + final.stderr
    counts = fal.billable_count()
    assert len(counts) == CLIPS
    assert sum(counts.values()) - CLIPS <= uncertain, "only jobs the user chose to resubmit may repeat"


def test_ctrl_c_leaves_jobs_journaled_and_the_next_run_collects_them(tmp_path: Path, fal: FalFake) -> None:
    root = project(tmp_path / "p", concurrency=8)
    env = {**os.environ, "PYTHONPATH": str(REPO), "FAL_KEY": KEY, "AIVP_FAL_QUEUE_URL": fal.queue_url,
           "AIVP_FAL_REST_URL": fal.rest_url}
    proc = subprocess.Popen([sys.executable, "-m", "aivpbuild", "-C", str(root), "-j", "8"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while len(fal.ledger) < 8 and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, out + err
    assert "next run picks them up" in out
    again = build(root, fal)
    assert again.returncode == 0, again.stdout + again.stderr
    assert_all_built_once(root, fal)


def test_a_paid_job_whose_clip_changed_is_still_collected_into_the_cache(tmp_path: Path, fal: FalFake) -> None:
    root = project(tmp_path / "p")
    assert build(root, fal, "s00", crash="while-polling:1").returncode == -signal.SIGKILL
    assert len(fal.ledger) == 1
    manifest = root / "project.aivp.yaml"
    original = manifest.read_text()
    manifest.write_text(original.replace("prompt: shot 0\n", "prompt: shot zero, reworded\n"))
    changed = build(root, fal, "s00")
    assert changed.returncode == 0, changed.stderr
    assert "is no longer wanted" in changed.stdout and "saved the result" in changed.stdout
    assert len(fal.ledger) == 2  # the reworded clip, once
    manifest.write_text(original)  # back to the first prompt: its paid result is in the cache
    reverted = build(root, fal, "s00")
    assert reverted.returncode == 0 and "restored from cache s00" in reverted.stdout
    assert len(fal.ledger) == 2


def test_jobs_lists_and_cancels_journaled_jobs(tmp_path: Path, fal: FalFake) -> None:
    from tests.helpers import run_cli

    fal.run_seconds = 30  # jobs stay running
    root = project(tmp_path / "p")
    assert build(root, fal, "s00", crash="after-journal:1").returncode == -signal.SIGKILL
    request_id = fal.ledger[0]["request_id"]
    env = {"FAL_KEY": KEY, "AIVP_FAL_QUEUE_URL": fal.queue_url, "AIVP_FAL_REST_URL": fal.rest_url}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        listing = run_cli("jobs", "-C", str(root))
        assert request_id in listing.out and "submitted" in listing.out and "$0.05" in listing.out
        cancel = run_cli("jobs", "-C", str(root), "cancel", "--all")
        assert cancel.code == 0 and f"cancel requested for fal {request_id}" in cancel.out
    finally:
        for k, v in old.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
    assert fal.jobs[request_id].cancelled
    assert "cancelled" in run_cli("jobs", "-C", str(root)).out


def test_cancel_on_interrupt_cancels_in_flight_jobs(tmp_path: Path, fal: FalFake) -> None:
    fal.run_seconds = 30
    root = project(tmp_path / "p", concurrency=4)
    env = {**os.environ, "PYTHONPATH": str(REPO), "FAL_KEY": KEY, "AIVP_FAL_QUEUE_URL": fal.queue_url,
           "AIVP_FAL_REST_URL": fal.rest_url}
    proc = subprocess.Popen([sys.executable, "-m", "aivpbuild", "-C", str(root), "--cancel-on-interrupt"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while len(fal.ledger) < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, out + err
    assert "cancelling submitted paid jobs" in out
    assert len(fal.ledger) == 4 and all(job.cancelled for job in fal.jobs.values())


def test_a_second_ctrl_c_exits_at_once_and_state_stays_sound(tmp_path: Path, fal: FalFake) -> None:
    import sqlite3

    import yaml

    fal.run_seconds = 30
    root = project(tmp_path / "p", concurrency=8)
    env = {**os.environ, "PYTHONPATH": str(REPO), "FAL_KEY": KEY, "AIVP_FAL_QUEUE_URL": fal.queue_url,
           "AIVP_FAL_REST_URL": fal.rest_url}
    proc = subprocess.Popen([sys.executable, "-m", "aivpbuild", "-C", str(root)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while len(fal.ledger) < 8 and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    start = time.monotonic()
    out, _ = proc.communicate(timeout=30)
    # 130 from aivpbuild itself, or death by SIGINT if the build had already wound down (a shell
    # shows 130 for both)
    assert proc.returncode in (130, -signal.SIGINT) and "interrupted" in out
    assert time.monotonic() - start < 5
    with sqlite3.connect(root / ".aivp/state.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        journaled = db.execute("SELECT count(*) FROM jobs WHERE request_id IS NOT NULL").fetchone()[0]
    assert journaled == len(fal.ledger)  # every accepted job kept its request id
    lock = root / "aivp.lock"
    assert not lock.exists() or yaml.safe_load(lock.read_text()) is not None
