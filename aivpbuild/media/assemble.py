"""The edit: clips concatenated in order into one MP4, audio kept in sync.

The output takes the first clip's size and frame rate. A clip whose H.264 stream already
matches it (size, rate, yuv420p and the same parameter sets) is copied packet for packet; any
other clip is re-encoded, fitted to that size (scaled to fit, centred, black bars, never
distorted) and rate, with the same encoder settings as the renderer, so its packets join the
same stream. Audio is decoded, each clip's part trimmed or padded (a clip without audio gets
silence) to its exact video length, and encoded as one AAC track: it cannot drift.
"""

from __future__ import annotations

import itertools
import tempfile
from collections.abc import Iterator, Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from aivpbuild.errors import MediaError
from aivpbuild.fsutil import atomic_path
from aivpbuild.media.encode import (
    AUDIO_RATE,
    VideoWriter,
    encode_audio,
    rgb_frames,
    writer_extradata,
)
from aivpbuild.media.probe import MediaInfo, probe


def assemble(clips: Sequence[Path], out: Path) -> MediaInfo:
    """Concatenate ``clips`` in order into ``out`` (written via a temp file + rename)."""
    if not clips:
        raise MediaError("the edit has no clips", hint="list at least one clip under edit:")
    infos = [probe(c) for c in clips]
    extradata = [_extradata(c) for c in clips]
    first = infos[0]
    # Where each clip starts on the output's frame grid: rounding the running total (not each
    # clip) keeps the whole edit within half a frame of the sum of the clips.
    starts, total = [], Fraction(0)
    for info in [*infos, None]:
        starts.append(round(total * first.fps))
        total += _length(info) if info is not None else 0
    frames = [b - a for a, b in itertools.pairwise(starts)]
    with tempfile.TemporaryDirectory(prefix="aivp-edit-") as tmp, atomic_path(out) as target:
        if all(_joinable(i, first) and x == extradata[0]
               for i, x in zip(infos, extradata, strict=True)):
            parts = list(clips)  # one format throughout: a pure stream copy
        else:
            reference = writer_extradata(first.width, first.height, first.fps)
            parts = []
            for n, (clip, info, data) in enumerate(zip(clips, infos, extradata, strict=True)):
                if _joinable(info, first) and data == reference:
                    parts.append(clip)
                else:
                    parts.append(Path(tmp) / f"part-{n}.mp4")
                    _reencode(clip, info, first, frames[n], parts[-1])
        audio = None
        if any(i.has_audio for i in infos):
            samples = [round(Fraction(s) / first.fps * AUDIO_RATE) for s in starts]
            audio = (_audio_of(c, i, b - a) for c, i, (a, b)
                     in zip(clips, infos, itertools.pairwise(samples), strict=True))
        _concat(parts, [Fraction(s) / first.fps for s in starts], audio, target)
    return probe(out)


def _joinable(info: MediaInfo, first: MediaInfo) -> bool:
    return (info.codec == "h264" and info.pix_fmt == "yuv420p"
            and (info.width, info.height, info.fps) == (first.width, first.height, first.fps))


def _length(info: MediaInfo) -> Fraction:
    return Fraction(info.frames) / info.fps


def _extradata(clip: Path) -> bytes:
    with av.open(str(clip)) as container:
        return bytes(container.streams.video[0].codec_context.extradata or b"")


def _concat(parts: Sequence[Path], starts: Sequence[Fraction],
            audio: Iterator[np.ndarray] | None, out: Path) -> None:
    """Copy the parts' video packets one after another (each shifted to its start time, in
    seconds) and add the audio blocks as one AAC track."""
    with av.open(str(parts[0])) as template, \
            av.open(str(out), "w", format="mp4", options={"movflags": "+faststart"}) as output:
        video = output.add_stream_from_template(template.streams.video[0])
        sound = None
        if audio is not None:
            sound = output.add_stream("aac", rate=AUDIO_RATE, layout="stereo")
            sound.codec_context.open()
        for part, offset in zip(parts, starts, strict=False):
            with av.open(str(part)) as source:
                for packet in source.demux(video=0):
                    if packet.dts is None:
                        continue  # the demuxer's end-of-stream marker
                    shift = round(offset / packet.time_base)
                    packet.pts = (packet.pts or 0) + shift
                    packet.dts += shift
                    packet.stream = video
                    output.mux(packet)
        if sound is not None and audio is not None:
            encode_audio(output, sound, audio)


def _reencode(clip: Path, info: MediaInfo, first: MediaInfo, wanted: int, part: Path) -> None:
    """``clip`` as a video-only MP4 of ``wanted`` frames at the first clip's size and rate
    (frames repeated or dropped to change the rate), streamed one frame at a time."""
    with VideoWriter(part, first.width, first.height, first.fps) as writer:
        source = _frames(clip, first.width, first.height)
        current = next(source, None)
        if current is None:
            raise MediaError(f"{clip.name} has no video frames")
        index = 0
        for k in range(wanted):
            # the source frame on screen at this output frame's time
            target = min(info.frames - 1, int(k * info.fps / first.fps))
            while index < target:
                following = next(source, None)
                if following is None:
                    break
                current, index = following, index + 1
            writer.write(current)


def _frames(clip: Path, width: int, height: int) -> Iterator[np.ndarray]:
    """The clip's frames as RGB, each fitted into width x height."""
    for rgb in rgb_frames(clip):
        yield rgb if rgb.shape[:2] == (height, width) else fit(rgb, width, height)


def fit(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    """Scale a frame to fit inside width x height without distortion, centred on black."""
    from PIL import Image

    h, w = rgb.shape[:2]
    scale = min(width / w, height / h)
    size = (max(1, min(width, round(w * scale))), max(1, min(height, round(h * scale))))
    canvas = Image.new("RGB", (width, height))
    canvas.paste(Image.fromarray(rgb).resize(size, Image.Resampling.LANCZOS),
                 ((width - size[0]) // 2, (height - size[1]) // 2))
    return np.asarray(canvas)


def _audio_of(clip: Path, info: MediaInfo, length: int) -> np.ndarray:
    """A clip's audio as stereo float32 at 48 kHz, trimmed or padded with silence to
    ``length`` samples (all silence if it has no audio)."""
    result = np.zeros((2, length), dtype=np.float32)
    if not info.has_audio:
        return result
    resampler = av.AudioResampler(format="fltp", layout="stereo", rate=AUDIO_RATE)
    chunks = []
    with av.open(str(clip)) as container:
        for frame in container.decode(audio=0):
            chunks += [f.to_ndarray() for f in resampler.resample(frame)]
    chunks += [f.to_ndarray() for f in resampler.resample(None)]
    if chunks:
        data = np.concatenate(chunks, axis=1)[:, :length]
        result[:, : data.shape[1]] = data
    return result
