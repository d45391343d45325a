"""A small media probe, and the check every produced or downloaded clip passes before it is
cached: it opens, and its size, frame count, rate and audio match the request.

Most clips are H.264 MP4s, read from their box structure by :mod:`aivpbuild.media.mp4`; the
rest are opened with PyAV."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from aivpbuild.errors import MediaError


@dataclass(frozen=True)
class MediaInfo:
    duration: float
    width: int
    height: int
    fps: Fraction
    frames: int
    codec: str
    pix_fmt: str
    has_audio: bool
    audio_duration: float | None


def probe(path: Path) -> MediaInfo:
    """Read a video's stream facts; MediaError naming the file when it cannot be read.

    MP4s the box reader can vouch for are read from their index alone (no decoder is opened);
    every other file goes through PyAV.
    """
    from aivpbuild.media.mp4 import read_mp4  # it builds MediaInfo, so it imports this module

    try:
        info = read_mp4(path)
    except OSError:
        info = None  # PyAV opens it again and words the error
    return info if info is not None else _probe_with_av(path)


def _probe_with_av(path: Path) -> MediaInfo:
    """:func:`probe` through FFmpeg: open the file, then demux every video packet."""
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise MediaError(f"{path.name} has no video stream")
            video = container.streams.video[0]
            fps = Fraction(video.average_rate or video.guessed_rate or 0)
            declared = video.frames
            # Count the packets actually present: a truncated file keeps its index but not its data.
            frames = sum(1 for packet in container.demux(video=0) if packet.size)
            if declared and frames < declared:
                raise MediaError(f"{path.name} is truncated: {frames} of {declared} frames "
                                 "are present", hint="rebuild or re-download it")
            if video.duration is not None and video.time_base is not None:
                duration = float(video.duration * video.time_base)
            else:
                duration = float(frames / fps) if fps else 0.0
            audio = container.streams.audio[0] if container.streams.audio else None
            audio_duration = None
            if audio is not None and audio.duration is not None and audio.time_base is not None:
                audio_duration = float(audio.duration * audio.time_base)
            return MediaInfo(
                duration=duration, width=video.codec_context.width,
                height=video.codec_context.height, fps=fps, frames=int(frames),
                codec=video.codec_context.name, pix_fmt=str(video.codec_context.pix_fmt),
                has_audio=audio is not None, audio_duration=audio_duration,
            )
    except MediaError:
        raise
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise MediaError(f"{path.name} is not a readable video ({exc})") from None


def verify(path: Path, *, width: int, height: int, frames: int, fps: Fraction,
           audio: bool | None = None, frame_tolerance: int = 1,
           exact_size: bool = True) -> MediaInfo:
    """Check a clip against the request; MediaError listing every mismatch.

    ``exact_size=False`` is for remote models, which pick their own frame rate and round sizes
    their own way: the same aspect ratio within 2%, a height within 12% and a duration within
    half a second of ``frames / fps`` are accepted.
    """
    info = probe(path)
    problems = []
    if exact_size:
        wrong_size = (info.width, info.height) != (width, height)
    else:
        wrong_size = (abs(info.width / info.height - width / height) > 0.02 * width / height
                      or abs(info.height - height) > 0.12 * height)
    if wrong_size:
        problems.append(f"it is {info.width}x{info.height}, the request was {width}x{height}")
    if not exact_size:
        wanted = float(frames / fps)
        if abs(info.duration - wanted) > 0.5:
            problems.append(f"it lasts {info.duration:.2f} s, the request was {wanted:g} s")
    elif abs(info.frames - frames) > frame_tolerance:
        problems.append(f"it has {info.frames} frames, the request was {frames} "
                        f"({float(frames / fps):.2f} s at {float(fps):g} fps)")
    if exact_size and fps and info.fps and abs(float(info.fps) - float(fps)) > 0.01:
        problems.append(f"it runs at {float(info.fps):g} fps, the request was {float(fps):g}")
    if audio is not None and info.has_audio != audio:
        problems.append("it has an audio track, none was requested" if info.has_audio
                        else "it has no audio track, one was requested")
    if problems:
        raise MediaError(f"{path.name}: " + "; ".join(problems))
    return info
