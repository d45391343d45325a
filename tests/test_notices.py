"""Notices many clips share are said once, so a film of 200 text-to-video clips does not print
200 identical lines on every status."""

from __future__ import annotations

import json
from pathlib import Path

from aivpbuild.api import group_notices
from tests.helpers import manifest, run_cli, write_project


def test_a_message_many_clips_share_is_said_once_with_the_count_and_first_ids() -> None:
    notices = [f"s{i}: no keyframe, using text-to-video" for i in range(5)] + ["s9: camera words not understood"]
    assert group_notices(notices) == [
        "5 clips (s0, s1, s2, …): no keyframe, using text-to-video",
        "s9: camera words not understood",
    ]


def test_few_clips_and_notices_without_a_clip_stay_as_they_are() -> None:
    notices = ["a: end_image without image is ignored", "b: end_image without image is ignored", "plain note"]
    assert group_notices(notices) == notices


def test_status_json_keeps_one_notice_per_clip_for_scripts(tmp_path: Path) -> None:
    clips = {f"s{i}": {"prompt": f"shot {i}", "end_image": "image/missing-lf.png"} for i in range(5)}
    root = write_project(tmp_path / "p", manifest(clips))
    notices = json.loads(run_cli("-C", str(root), "status", "--json").out)["notices"]
    assert len(notices) == 5 and all(n.startswith(f"s{i}: ") for i, n in enumerate(notices))
    text = run_cli("-C", str(root), "status").err
    assert text.count("note: ") == 1 and "5 clips (s0, s1, s2, …)" in text
