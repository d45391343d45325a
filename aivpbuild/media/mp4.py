"""The stream facts of an MP4/MOV file read from its box structure, without decoding.

:func:`read_mp4` reads the top-level box headers and the ``moov`` box (never the media data)
and gives the same :class:`MediaInfo` as the PyAV probe: the numbers FFmpeg's MP4 demuxer and
H.264 decoder report. It vouches only for what it can compute exactly, H.264 video in a plain
(not fragmented) file, and returns None for anything else, so the caller falls back to PyAV. A
file whose samples or boxes run past its end is a :class:`MediaError` naming the truncation.
"""

from __future__ import annotations

import io
import struct
import sys
from dataclasses import dataclass
from fractions import Fraction
from itertools import accumulate, chain, repeat
from pathlib import Path

from aivpbuild.errors import MediaError
from aivpbuild.media.probe import MediaInfo

__all__ = ["read_mp4"]

#: Boxes an ISO-BMFF or QuickTime file can start with.
_FIRST = frozenset({b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot"})
#: Top-level boxes whose end past the end of the file means the file was cut short.
_KNOWN = _FIRST | {b"udta", b"meta", b"uuid", b"pdin"}
#: Boxes of a fragmented file: its samples are described outside ``moov``.
_FRAGMENTED = frozenset({b"moof", b"mfra", b"sidx", b"styp", b"ssix"})
#: Sample entry fourcc -> the codec name PyAV reports. Only H.264 is vouched for: the pixel format
#: of other codecs needs the decoder (and PyAV names the AV1 decoder, "libdav1d", not the codec).
_CODECS = {b"avc1": "h264", b"avc3": "h264"}
_MAX_MOOV = 64 << 20
_INT_MAX = 2**31 - 1
#: H.264 profiles whose SPS carries chroma_format_idc and bit depths.
_HIGH_PROFILES = frozenset({100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135})
_ENDIAN = "le" if sys.byteorder == "little" else "be"


class _Unsure(Exception):
    """The file is outside what this reader can vouch for."""


def _need(condition: bool) -> None:
    if not condition:
        raise _Unsure


@dataclass
class _Track:
    handler: bytes
    timescale: int
    duration: int  # as FFmpeg's demuxer reports it, in timescale units
    stts: list[tuple[int, int]]
    sizes: list[int]
    sample_ends: list[int]  # where each sample's data ends in the file
    ctts: list[tuple[int, int]]
    sync: list[int] | None  # 1-based key frame numbers; None: every sample is one
    entry: bytes  # the first sample entry of stsd (fourcc + fields + child boxes)


def read_mp4(path: Path) -> MediaInfo | None:
    """The facts of ``path`` if it is an MP4/MOV this reader can vouch for, else None.

    Raises :class:`MediaError` when the file is an MP4 that is cut short.
    """
    try:
        with open(path, "rb", buffering=0) as file:
            size, moov, overrun = _top_level(file)
        facts = _facts(moov, size) if moov is not None else None
    except (_Unsure, struct.error, IndexError, ValueError, OverflowError):
        return None
    cut = None if overrun is None else f"it has {size} bytes but its '{overrun[0]}' box ends at byte {overrun[1]}"
    if facts is None:
        if cut is not None:
            raise _truncated(path.name, cut)
        return None
    info, data_end, present = facts
    if data_end > size:
        cut = (f"{present} of {info.frames} frames are present" if present < info.frames
               else f"it has {size} bytes but its media data ends at byte {data_end}")
    if cut is not None:
        raise _truncated(path.name, cut)
    return info


def _truncated(name: str, detail: str) -> MediaError:
    return MediaError(f"{name} is truncated: {detail}", hint="rebuild or re-download it")


def _top_level(file: io.FileIO) -> tuple[int, bytes | None, tuple[str, int] | None]:
    """File size, the ``moov`` payload, and the first box running past the end (type, end)."""
    size = file.seek(0, 2)
    offset, moov, first = 0, None, True
    while offset < size:
        file.seek(offset)
        head = file.read(16) or b""
        _need(len(head) >= 8)  # a few stray bytes: leave them to FFmpeg
        box_size, kind = struct.unpack_from(">I4s", head)
        header = 8
        if box_size == 1:
            _need(len(head) == 16)
            box_size, header = struct.unpack_from(">Q", head, 8)[0], 16
        elif box_size == 0:
            box_size = size - offset
        _need(box_size >= header and (kind in _FIRST if first else _is_fourcc(kind)))
        _need(kind not in _FRAGMENTED)
        end = offset + box_size
        if end > size:
            _need(kind in _KNOWN)
            return size, None if kind == b"moov" else moov, (kind.decode("latin-1"), end)
        if kind == b"moov":
            _need(moov is None and box_size <= _MAX_MOOV)
            file.seek(offset + header)
            moov = file.read(box_size - header) or b""
            _need(len(moov) == box_size - header)
        offset, first = end, False
    return size, moov, None


def _is_fourcc(kind: bytes) -> bool:
    return all(0x20 <= c < 0x7F or c == 0xA9 for c in kind)


def _children(data: bytes, start: int, end: int) -> dict[bytes, list[tuple[int, int]]]:
    """The boxes in ``data[start:end]``: type -> [(payload start, payload end)]."""
    boxes: dict[bytes, list[tuple[int, int]]] = {}
    offset = start
    while offset + 8 <= end:
        box_size, kind = struct.unpack_from(">I4s", data, offset)
        header = 8
        if box_size == 1:
            box_size, header = struct.unpack_from(">Q", data, offset + 8)[0], 16
        elif box_size == 0:
            box_size = end - offset
        _need(header <= box_size <= end - offset)
        boxes.setdefault(kind, []).append((offset + header, offset + box_size))
        offset += box_size
    _need(offset == end or (offset + 4 == end and data[offset:end] == b"\0\0\0\0"))  # QuickTime's terminator
    return boxes


def _one(boxes: dict[bytes, list[tuple[int, int]]], kind: bytes) -> tuple[int, int] | None:
    found = boxes.get(kind)
    if not found:
        return None
    _need(len(found) == 1)
    return found[0]


def _must(boxes: dict[bytes, list[tuple[int, int]]], kind: bytes) -> tuple[int, int]:
    found = _one(boxes, kind)
    _need(found is not None)
    assert found is not None
    return found


def _table(data: bytes, box: tuple[int, int], fields: str) -> list[tuple[int, ...]]:
    """A full box's entries: u32 count, then ``count`` records of ``fields`` (struct codes)."""
    count = struct.unpack_from(">I", data, box[0] + 4)[0]
    record = struct.calcsize(">" + fields)
    _need(box[0] + 8 + count * record <= box[1])
    return list(struct.iter_unpack(">" + fields, data[box[0] + 8: box[0] + 8 + count * record]))


def _facts(moov: bytes, size: int) -> tuple[MediaInfo, int, int]:
    """The facts, where the media data ends, and how many video frames end within ``size``."""
    top = _children(moov, 0, len(moov))
    _need(b"mvex" not in top)
    mvhd = _must(top, b"mvhd")
    movie_timescale = struct.unpack_from(">I", moov, mvhd[0] + (20 if moov[mvhd[0]] == 1 else 12))[0]
    tracks = [_track(moov, start, end, movie_timescale) for start, end in top.get(b"trak", [])]
    video = next((t for t in tracks if t.handler == b"vide"), None)
    _need(video is not None)
    assert video is not None
    audio = next((t for t in tracks if t.handler == b"soun"), None)
    codec = _CODECS.get(video.entry[:4])
    _need(codec is not None and all(video.sizes))
    assert codec is not None
    width, height, pix_fmt = _h264(video.entry)
    frames = len(video.sizes)
    _need(sum(count for count, _ in video.stts) == frames)
    total = sum(count * delta for count, delta in video.stts)
    _need(total > 0)
    # FFmpeg's average_rate: frames per stts time, reduced (av_reduce with INT_MAX bounds)
    fps = Fraction(video.timescale * frames, total)
    _need(fps.numerator <= _INT_MAX and fps.denominator <= _INT_MAX)
    info = MediaInfo(
        duration=float(Fraction(video.duration, video.timescale)), width=width, height=height,
        fps=fps, frames=frames, codec=codec, pix_fmt=pix_fmt, has_audio=audio is not None,
        audio_duration=None if audio is None else float(Fraction(audio.duration, audio.timescale)),
    )
    data_end = max((max(t.sample_ends, default=0) for t in tracks), default=0)
    present = len(video.sizes) if data_end <= size else sum(1 for end in video.sample_ends if end <= size)
    return info, data_end, present


def _track(data: bytes, start: int, end: int, movie_timescale: int) -> _Track:
    trak = _children(data, start, end)
    mdia = _children(data, *_must(trak, b"mdia"))
    mdhd = _must(mdia, b"mdhd")
    hdlr = _must(mdia, b"hdlr")
    handler = data[hdlr[0] + 8: hdlr[0] + 12]
    if data[mdhd[0]] == 1:
        timescale, duration = struct.unpack_from(">IQ", data, mdhd[0] + 20)
    else:
        timescale, duration = struct.unpack_from(">II", data, mdhd[0] + 12)
    _need(timescale > 0 and 0 < duration < 0xFFFFFFFF)
    minf = _children(data, *_must(mdia, b"minf"))
    _self_contained(data, minf)
    stbl = _children(data, *_must(minf, b"stbl"))
    stsd = _must(stbl, b"stsd")
    _need(struct.unpack_from(">I", data, stsd[0] + 4)[0] == 1)  # one sample description
    entry_size = struct.unpack_from(">I", data, stsd[0] + 8)[0]
    _need(8 <= entry_size <= stsd[1] - stsd[0] - 8)
    entry = data[stsd[0] + 12: stsd[0] + 8 + entry_size]
    stts = [(c, d) for c, d in _table(data, _must(stbl, b"stts"), "II")]
    _need(all(d <= _INT_MAX for _, d in stts))  # FFmpeg clips larger deltas
    sizes = _sample_sizes(data, stbl)
    _need(len(sizes) > 0)
    ctts_box = _one(stbl, b"ctts")
    ctts = [(c, o) for c, o in _table(data, ctts_box, "Ii")] if ctts_box else []
    _need(all(o >= 0 for _, o in ctts))  # negative offsets shift FFmpeg's timestamps
    stss_box = _one(stbl, b"stss")
    sync = [n for (n,) in _table(data, stss_box, "I")] if stss_box else None
    _need(sync is None or len(sync) > 0)  # an empty stss makes FFmpeg parse the packets
    track = _Track(handler, timescale, duration, stts, sizes, _sample_ends(data, stbl, sizes), ctts, sync, entry)
    total = sum(count * delta for count, delta in stts)
    if total:
        track.duration = min(track.duration, total)
    edts = _one(trak, b"edts")
    elst = _one(_children(data, *edts), b"elst") if edts else None
    if elst is not None:
        track.duration = _edited(data, elst, track, movie_timescale)
    return track


def _self_contained(data: bytes, minf: dict[bytes, list[tuple[int, int]]]) -> None:
    """Unsure unless every data reference points into this file."""
    dinf = _one(minf, b"dinf")
    dref = _one(_children(data, *dinf), b"dref") if dinf else None
    if dref is None:
        return
    count = struct.unpack_from(">I", data, dref[0] + 4)[0]
    entries = _children(data, dref[0] + 8, dref[1])
    _need(sum(len(v) for v in entries.values()) == count)
    _need(all(data[s + 3] & 1 for boxes in entries.values() for s, _ in boxes))


def _sample_sizes(data: bytes, stbl: dict[bytes, list[tuple[int, int]]]) -> list[int]:
    stsz = _one(stbl, b"stsz")
    if stsz is not None:
        fixed, count = struct.unpack_from(">II", data, stsz[0] + 4)
        if fixed:
            return [fixed] * count
        _need(stsz[0] + 12 + 4 * count <= stsz[1])
        return list(struct.unpack_from(f">{count}I", data, stsz[0] + 12))
    stz2 = _must(stbl, b"stz2")
    field, count = data[stz2[0] + 7], struct.unpack_from(">I", data, stz2[0] + 8)[0]
    body = data[stz2[0] + 12: stz2[1]]
    if field == 4:
        _need(len(body) * 2 >= count)
        return [(body[i // 2] >> (0 if i % 2 else 4)) & 15 for i in range(count)]
    _need(field in (8, 16) and len(body) * 8 >= count * field)
    return list(struct.unpack_from(f">{count}{'B' if field == 8 else 'H'}", body))


def _sample_ends(data: bytes, stbl: dict[bytes, list[tuple[int, int]]], sizes: list[int]) -> list[int]:
    """Where each sample's data ends, from the chunk offsets and samples-per-chunk runs."""
    stco = _one(stbl, b"stco")
    offsets = [o for (o,) in _table(data, stco, "I")] if stco else [
        o for (o,) in _table(data, _must(stbl, b"co64"), "Q")]
    runs = _table(data, _must(stbl, b"stsc"), "III")
    _need(len(runs) > 0 and runs[0][0] == 1)
    prefix = [0, *accumulate(sizes)]
    ends: list[int] = []
    sample = 0
    for i, (first, per_chunk, description) in enumerate(runs):
        last = runs[i + 1][0] - 1 if i + 1 < len(runs) else len(offsets)
        _need(description == 1 and first <= last + 1 and last <= len(offsets) and per_chunk > 0)
        for chunk in range(first - 1, last):
            _need(sample + per_chunk <= len(sizes))
            base = offsets[chunk] - prefix[sample]
            ends.extend(map(base.__add__, prefix[sample + 1: sample + per_chunk + 1]))
            sample += per_chunk
    _need(sample == len(sizes))
    return ends


def _edited(data: bytes, elst: tuple[int, int], track: _Track, movie_timescale: int) -> int:
    """The track's duration under a one-entry edit list, as FFmpeg applies it.

    Unsure when FFmpeg would drop packets for it (a key frame before the edit's start, or one
    past its end that is not the last), or for any other edit list.
    """
    version = data[elst[0]]
    entries = _table(data, elst, "QqhH" if version == 1 else "IihH")
    _need(len(entries) == 1 and movie_timescale > 0)
    segment, media_time, rate, fraction = entries[0]
    _need(segment > 0 and media_time >= 0 and (rate, fraction) == (1, 0))
    # av_rescale: movie timescale to media timescale, rounded to nearest
    length = (segment * track.timescale + movie_timescale // 2) // movie_timescale
    if track.handler == b"vide":
        _keeps_every_sample(track, media_time, media_time + length)
    return min(track.duration, length)


def _keeps_every_sample(track: _Track, start: int, end: int) -> None:
    """Unsure unless FFmpeg keeps every video sample under an edit from ``start`` to ``end``."""
    times = [0, *accumulate(chain.from_iterable(repeat(delta, count) for count, delta in track.stts))]
    offsets = list(chain.from_iterable(repeat(offset, count) for count, offset in track.ctts))
    count = len(track.sizes)
    keys = [n - 1 for n in track.sync] if track.sync is not None else list(range(count))
    _need(len(times) == count + 1 and (not offsets or len(offsets) == count) and keys[0] == 0)
    for k in keys:
        _need(0 <= k < count and (k == 0 or times[k] > start))
        shown = times[k] + (offsets[k] if offsets else 0)
        _need(k == count - 1 or shown + times[k + 1] - times[k] < end)


class _Bits:
    """An MSB-first bit reader with Exp-Golomb codes (for an H.264 SPS)."""

    def __init__(self, data: bytes) -> None:
        self.bits = bin(int.from_bytes(b"\x01" + data, "big"))[3:]
        self.pos = 0

    def u(self, n: int) -> int:
        _need(self.pos + n <= len(self.bits))
        value = int(self.bits[self.pos: self.pos + n], 2) if n else 0
        self.pos += n
        return value

    def ue(self) -> int:
        one = self.bits.find("1", self.pos)
        _need(0 <= one - self.pos <= 31)
        zeros = one - self.pos
        self.pos = one
        return self.u(zeros + 1) - 1

    def se(self) -> int:
        k = self.ue()
        return (k + 1) // 2 if k % 2 else -(k // 2)


def _h264(entry: bytes) -> tuple[int, int, str]:
    """Width, height and pixel format the H.264 decoder reports, from the sample entry."""
    width, height = struct.unpack_from(">HH", entry, 28)
    boxes = _children(entry, 82, len(entry))
    _need(b"clap" not in boxes)
    avcc = _must(boxes, b"avcC")
    _need(entry[avcc[0]] == 1 and entry[avcc[0] + 5] & 0x1F == 1)  # version 1, exactly one SPS
    length = struct.unpack_from(">H", entry, avcc[0] + 6)[0]
    nal = entry[avcc[0] + 8: avcc[0] + 8 + length]
    _need(len(nal) == length > 4 and nal[0] & 0x1F == 7)
    sps = _parse_sps(nal[1:].replace(b"\x00\x00\x03", b"\x00\x00"))
    _need((sps.width, sps.height) == (width, height))
    full_range = sps.full_range
    if full_range is None:
        _need(b"colr" not in boxes)  # the container's colour range would decide
        full_range = False
    subsampling = {1: "420", 2: "422"}[sps.chroma_format]
    if sps.bit_depth == 8:
        pix_fmt = f"yuv{'j' if full_range else ''}{subsampling}p"
    else:
        _need(sps.bit_depth == 10)
        pix_fmt = f"yuv{subsampling}p10{_ENDIAN}"
    return width, height, pix_fmt


@dataclass(frozen=True)
class _Sps:
    width: int
    height: int
    chroma_format: int
    bit_depth: int
    full_range: bool | None  # None: the SPS does not say


def _parse_sps(rbsp: bytes) -> _Sps:
    """The fields of an H.264 sequence parameter set (ITU-T H.264 7.3.2.1.1) the decoder's
    size and pixel format come from."""
    bits = _Bits(rbsp)
    profile = bits.u(8)
    bits.u(16)  # constraint flags, level
    bits.ue()  # seq_parameter_set_id
    chroma_format, bit_depth = 1, 8
    if profile in _HIGH_PROFILES:
        chroma_format = bits.ue()
        _need(chroma_format in (1, 2))  # monochrome and 4:4:4 are left to the decoder
        bit_depth = bits.ue() + 8
        _need(bits.ue() + 8 == bit_depth)  # chroma depth
        bits.u(1)  # qpprime_y_zero_transform_bypass
        if bits.u(1):  # seq_scaling_matrix_present
            for i in range(8):
                if bits.u(1):
                    _skip_scaling_list(bits, 16 if i < 6 else 64)
    bits.ue()  # log2_max_frame_num_minus4
    poc_type = bits.ue()
    if poc_type == 0:
        bits.ue()
    elif poc_type == 1:
        bits.u(1)
        bits.se()
        bits.se()
        for _ in range(bits.ue()):
            bits.se()
    bits.ue()  # max_num_ref_frames
    bits.u(1)  # gaps_in_frame_num_allowed
    width_mbs, height_units = bits.ue() + 1, bits.ue() + 1
    frame_mbs_only = bits.u(1)
    _need(frame_mbs_only == 1)  # interlaced coding is left to the decoder
    bits.u(1)  # direct_8x8_inference
    left = right = top = bottom = 0
    if bits.u(1):
        left, right, top, bottom = bits.ue(), bits.ue(), bits.ue(), bits.ue()
    _need(left == top == 0)  # FFmpeg may realign a left/top crop
    crop_x = 2  # 4:2:0 and 4:2:2
    crop_y = 2 if chroma_format == 1 else 1
    width = width_mbs * 16 - crop_x * right
    height = height_units * 16 - crop_y * bottom
    full_range = None
    if bits.u(1):  # vui_parameters_present
        if bits.u(1) and bits.u(8) == 255:  # aspect_ratio_info_present, aspect_ratio_idc
            bits.u(32)  # sar_width, sar_height
        if bits.u(1):  # overscan_info_present
            bits.u(1)
        if bits.u(1):  # video_signal_type_present
            bits.u(3)  # video_format
            full_range = bool(bits.u(1))
    _need(width > 0 and height > 0)
    return _Sps(width, height, chroma_format, bit_depth, full_range)


def _skip_scaling_list(bits: _Bits, size: int) -> None:
    last = following = 8
    for _ in range(size):
        if following:
            following = (last + bits.se() + 256) % 256
        last = following or last
