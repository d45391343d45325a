"""The fakes' videos: sizes and lengths read from a request as the APIs do, real H.264."""

from __future__ import annotations

import io
from typing import Any

import av
import numpy as np
import pytest

from tests.fakes.media import corrupt_mp4, encode, frames_for, mp4, seconds_for, size_for, video_for


@pytest.mark.parametrize(
    ("payload", "size"),
    [
        ({"resolution": "480p", "aspect_ratio": "16:9"}, (854, 480)),
        ({"resolution": "720p", "aspect_ratio": "16:9"}, (1280, 720)),
        ({"resolution": "1080p"}, (1920, 1080)),
        ({"resolution": "480p", "aspect_ratio": "9:16"}, (480, 854)),
        ({"resolution": "720p", "aspect_ratio": "1:1"}, (720, 720)),
        ({"resolution": "480p", "aspect_ratio": "21:9"}, (1120, 480)),
        ({"resolution": "768P"}, (1366, 768)),
        ({"resolution": "1080P"}, (1920, 1080)),
        ({"resolution": "4k", "aspect_ratio": "16:9"}, (3840, 2160)),
        ({"resolution": "320x180"}, (320, 180)),
        ({"width": 96, "height": 64}, (96, 64)),
    ],
)
def test_size_follows_resolution_and_aspect_ratio(
    payload: dict[str, Any], size: tuple[int, int]
) -> None:
    assert size_for(payload) == size


def test_the_keyframe_decides_an_auto_aspect_ratio() -> None:
    assert size_for({"resolution": "144p", "aspect_ratio": "auto"}, image_size=(64, 36)) == (
        256,
        144,
    )
    assert size_for({"resolution": "144p"}, image_size=(36, 64)) == (144, 256)
    assert size_for({}, default_resolution="720p") == (1280, 720)


def test_durations_and_frame_counts() -> None:
    assert seconds_for({"duration": "5"}) == seconds_for({"duration": 5}) == 5
    assert seconds_for({"duration": "8s"}) == 8
    assert seconds_for({}) == 5
    with pytest.raises(ValueError):
        seconds_for({"duration": "long"})
    assert frames_for({"duration": "4"}) == 96
    assert frames_for({"duration": 2, "fps": 12}) == 24
    assert frames_for({"num_frames": 81, "frames_per_second": 16}) == 81


def probe(data: bytes) -> dict[str, Any]:
    with av.open(io.BytesIO(data), "r") as container:
        video = container.streams.video[0]
        lumas = [f.to_ndarray(format="gray") for f in container.decode(video)]
        return {
            "codec": video.codec_context.name,
            "pix_fmt": video.codec_context.pix_fmt,
            "size": (video.codec_context.width, video.codec_context.height),
            "fps": video.average_rate,
            "frames": len(lumas),
            "audio": len(container.streams.audio),
            "first": lumas[0],
            "last": lumas[-1],
        }


def test_videos_are_real_h264_with_the_asked_shape() -> None:
    info = probe(video_for({"resolution": "144p", "aspect_ratio": "16:9", "duration": "1"}))
    assert info["codec"] == "h264" and info["pix_fmt"] == "yuv420p"
    assert info["size"] == (256, 144) and info["frames"] == 24 and info["fps"] == 24
    assert info["audio"] == 0
    assert info["first"].std() > 10  # not a blank frame
    assert np.abs(info["first"].astype(int) - info["last"].astype(int)).mean() > 5  # not frozen


def test_audio_track_when_asked_and_the_cache() -> None:
    with_audio = video_for({"resolution": "90p", "duration": 1, "generate_audio": True, "fps": 12})
    info = probe(with_audio)
    assert info["audio"] == 1 and info["frames"] == 12 and info["size"] == (160, 90)
    assert encode(160, 90, 12, 12, True) is with_audio  # cached
    assert mp4(160, 90, 1.0, audio=True, fps=12) is with_audio


def test_a_corrupt_file_does_not_decode() -> None:
    with pytest.raises(av.error.FFmpegError), av.open(io.BytesIO(corrupt_mp4()), "r") as container:
        list(container.decode(video=0))
