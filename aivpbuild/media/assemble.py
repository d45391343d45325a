"""The edit: clips concatenated in order into one MP4 with audio kept in sync.

When every clip shares one format (codec, size, frame rate, audio layout) the packets are
copied without re-encoding; otherwise every clip is decoded and re-encoded to the first
clip's size and rate, and a clip without audio gets silence of its exact length.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from aivpbuild.errors import MediaError
from aivpbuild.media.encode import AUDIO_RATE, VideoWriter, encode_audio, rgb_frames
from aivpbuild.media.probe import MediaInfo, probe


def assemble(clips: Sequence[Path], out: Path) -> MediaInfo:
    """Concatenate ``clips`` into ``out`` (which should be a temp path; the caller moves it)."""
    if not clips:
        raise MediaError("the edit has no clips")
    infos = [probe(c) for c in clips]
    first = infos[0]
    same = all((i.codec, i.width, i.height, i.fps, i.pix_fmt, i.has_audio) ==
               (first.codec, first.width, first.height, first.fps, first.pix_fmt, first.has_audio)
               for i in infos)
    if same:
        _remux(clips, infos, out)
    else:
        _reencode(clips, infos, out)
    return probe(out)


def _remux(clips: Sequence[Path], infos: Sequence[MediaInfo], out: Path) -> None:
    """Copy the video packets (shifted by the running duration); audio is decoded, trimmed or
    padded to each clip's exact video length and encoded once, so it never drifts."""
    audio = infos[0].has_audio
    with av.open(str(clips[0])) as template, \
            av.open(str(out), "w", format="mp4", options={"movflags": "+faststart"}) as output:
        video = output.add_stream_from_template(template.streams.video[0])
        sound = None
        if audio:
            sound = output.add_stream("aac", rate=AUDIO_RATE, layout="stereo")
            sound.codec_context.open()
        offset = Fraction(0)
        for clip, info in zip(clips, infos, strict=True):
            with av.open(str(clip)) as source:
                for packet in source.demux(video=0):
                    if packet.dts is None:
                        continue
                    shift = round(offset / packet.time_base)
                    packet.pts = (packet.pts or 0) + shift
                    packet.dts += shift
                    packet.stream = video
                    output.mux(packet)
            offset += Fraction(info.frames) / info.fps
        if sound is not None:
            samples = np.concatenate([_audio_of(c, i) for c, i in zip(clips, infos, strict=True)], axis=1)
            encode_audio(output, sound, samples)


def _reencode(clips: Sequence[Path], infos: Sequence[MediaInfo], out: Path) -> None:
    """Decode every clip and encode one stream at the first clip's size and rate."""
    from PIL import Image

    first = infos[0]
    audio = any(i.has_audio for i in infos)
    speech = [_audio_of(c, i) if audio else None for c, i in zip(clips, infos, strict=True)]
    samples = np.concatenate([s for s in speech if s is not None], axis=1) if audio else None
    with VideoWriter(out, first.width, first.height, first.fps, audio=audio, audio_samples=samples) as writer:
        for clip, info in zip(clips, infos, strict=True):
            frames = list(rgb_frames(clip))
            wanted = round(Fraction(info.frames) / info.fps * first.fps)
            for k in range(wanted):
                source = frames[min(len(frames) - 1, int(k * info.fps / first.fps))]
                if source.shape[:2] != (first.height, first.width):
                    source = np.asarray(Image.fromarray(source).resize(
                        (first.width, first.height), Image.Resampling.BILINEAR))
                writer.write(source)


def _audio_of(clip: Path, info: MediaInfo) -> np.ndarray:
    """A clip's audio as stereo float32 at 48 kHz, exactly as long as its video (silence if none)."""
    length = round(Fraction(info.frames) / info.fps * AUDIO_RATE)
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
