"""Notices many clips share are said once, so a film of 200 text-to-video clips does not print
200 identical lines on every status."""

from __future__ import annotations

from aivpbuild.api import group_notices


def test_a_message_many_clips_share_is_said_once_with_the_count_and_first_ids() -> None:
    notices = [f"s{i}: no keyframe, using text-to-video" for i in range(5)] + ["s9: camera words not understood"]
    assert group_notices(notices) == [
        "5 clips (s0, s1, s2, …): no keyframe, using text-to-video",
        "s9: camera words not understood",
    ]


def test_few_clips_and_notices_without_a_clip_stay_as_they_are() -> None:
    notices = ["a: end_image without image is ignored", "b: end_image without image is ignored", "plain note"]
    assert group_notices(notices) == notices
