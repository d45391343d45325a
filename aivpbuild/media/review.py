"""Technical review of a built clip, in one decode pass (PyAV + numpy).

:func:`review_clip` demuxes the file once, decoding video and audio together. Every video frame
is shrunk by the scaler to 160 pixels wide and only its luma plane is kept: black and blank
frames, frozen stretches and hard cuts are judged on those. The first frame is kept as decoded
for the keyframe comparison (colour-histogram overlap for "same scene", luma SSIM for framing,
both at 64 pixels wide: composition, not texture). Audio is reduced to a running sum of squares.
Each :class:`Check` carries its measured value and its threshold, so a failure says by how much.

Thresholds come from the manifest's ``review:`` section (:class:`ReviewSettings`) resolved for
the clip's provider: the ``local`` renderer is exact, so it is held to tighter limits than
generative models, which pick their own frame counts and re-interpret their keyframe. (The local
renderer eases its camera moves, so a moving local shot may start and end almost still.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

import numpy as np

from aivpbuild.errors import MediaError
from aivpbuild.media.review_settings import ResolvedThresholds, ReviewSettings, ReviewThresholds, Thresholds
from aivpbuild.media.ssim import cover_fit, histogram_overlap, ssim

__all__ = [
    "Check",
    "ResolvedThresholds",
    "ReviewExpect",
    "ReviewResult",
    "ReviewSettings",
    "ReviewThresholds",
    "compare_frames",
    "continuity_check",
    "frame_rgb",
    "histogram_overlap",
    "review_clip",
    "ssim",
]

#: Width of the luma frames the temporal checks work on.
ANALYSIS_WIDTH = 160
#: Width at which a frame is compared with a keyframe or across a cut: the composition and
#: the colours of the scene, with re-rendered texture, noise and resampling averaged out.
COMPARE_WIDTH = 64
#: Quietest level reported, so digital silence stays a finite JSON number.
DBFS_FLOOR = -120.0
_CUT_WINDOW = 6  # frame pairs on each side that make up a cut's neighbourhood



def _resolve(thresholds: Thresholds, provider: str) -> ResolvedThresholds:
    if isinstance(thresholds, ResolvedThresholds):
        return thresholds
    return (thresholds or ReviewSettings()).for_provider(provider)


# ----------------------------------------------------------------------------- results
@dataclass(frozen=True)
class ReviewExpect:
    """What the clip was asked to be."""

    width: int
    height: int
    fps: Fraction
    duration: float
    audio: bool
    has_dialogue: bool
    camera: str | None
    camera_fixed: bool | None
    slate: bool = False  # a local text-to-video slate may hold still
    keyframe: Path | None = None  # image-to-video input: the first frame is compared with it
    provider: str = "local"


@dataclass(frozen=True)
class Check:
    """One measured property of a clip."""

    name: str
    passed: bool
    value: float | str | None
    threshold: float | str | None
    message: str

    def to_json(self) -> dict[str, Any]:
        return {"passed": self.passed, "value": self.value, "threshold": self.threshold,
                "message": self.message}


@dataclass(frozen=True)
class ReviewResult:
    """Every check of one clip; ``passed`` when all of them passed."""

    passed: bool
    checks: tuple[Check, ...]

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]

    def check(self, name: str) -> Check | None:
        return next((c for c in self.checks if c.name == name), None)

    def to_json(self) -> dict[str, Any]:
        """``{"passed": bool, "checks": {name: {"passed", "value", "threshold", "message"}}}``."""
        return {"passed": self.passed, "checks": {c.name: c.to_json() for c in self.checks}}

    def summary(self) -> str:
        """One line: "passed", or the failed checks' messages."""
        return "passed" if self.passed else "; ".join(f"{c.name}: {c.message}" for c in self.failed)


def _result(checks: list[Check]) -> ReviewResult:
    return ReviewResult(passed=all(c.passed for c in checks), checks=tuple(checks))


def _num(x: float, digits: int = 4) -> float:
    return round(float(x), digits)


# ----------------------------------------------------------------------------- the decode pass
@dataclass
class _Scan:
    """What one pass over a file measured."""

    error: str | None = None
    container: str = ""
    codec: str = ""
    width: int = 0
    height: int = 0
    display_aspect: float = 0.0
    fps: Fraction = Fraction(0)
    declared_frames: int = 0
    declared_duration: float | None = None
    times: list[float] = field(default_factory=list)
    lumas: list[np.ndarray] = field(default_factory=list)
    full_range: bool = False
    first: Any = None  # av.VideoFrame at full resolution
    has_audio: bool = False
    audio_sum_sq: float = 0.0
    audio_samples: int = 0

    @property
    def frames(self) -> int:
        return len(self.times)

    @property
    def frame_seconds(self) -> float:
        return float(1 / self.fps) if self.fps else 0.0

    @property
    def duration(self) -> float:
        if not self.times:
            return 0.0
        return self.times[-1] - self.times[0] + self.frame_seconds

    @property
    def audio_dbfs(self) -> float | None:
        if not self.audio_samples:
            return None
        rms = math.sqrt(self.audio_sum_sq / self.audio_samples)
        return max(DBFS_FLOOR, 20 * math.log10(rms)) if rms > 0 else DBFS_FLOOR

    def luma_stack(self) -> np.ndarray:
        """All frames' luma as floats, 0 = video black, 1 = white (N x h x w)."""
        stack = np.stack(self.lumas).astype(np.float32)
        return stack / 255 if self.full_range else (stack - 16) / 219


_EIGHT_BIT_YUV = {"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "nv12",
                  "gray"}


def _analysis_size(width: int, height: int) -> tuple[int, int]:
    if width <= ANALYSIS_WIDTH:
        return width, height
    return ANALYSIS_WIDTH, max(2, round(height * ANALYSIS_WIDTH / width / 2) * 2)


def _small_luma(frame: Any, width: int, height: int) -> np.ndarray:
    """The frame's luma plane shrunk to ``width`` x ``height`` (area average), as uint8 codes."""
    from av.video.reformatter import Interpolation

    fmt = None if frame.format.name in _EIGHT_BIT_YUV else "yuv420p"
    small = frame.reformat(width=width, height=height, format=fmt,
                           interpolation=Interpolation.AREA, threads=1)
    plane = small.planes[0]
    rows = np.frombuffer(plane, np.uint8).reshape(height, plane.line_size)
    return rows[:, :width].copy()


def _is_full_range(frame: Any) -> bool:
    return bool(frame.format.name.startswith("yuvj") or frame.format.name == "gray"
                or int(frame.color_range) == 2)


def _scan(path: Path) -> _Scan:
    """One demux pass over ``path``: stream facts, per-frame luma, audio energy."""
    import av

    scan = _Scan()
    if not path.is_file():
        scan.error = f"{path} does not exist"
        return scan
    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError, ValueError) as exc:
        scan.error = f"{path.name} is not a readable video ({_reason(exc)})"
        return scan
    with container:
        if not container.streams.video:
            scan.error = f"{path.name} has no video stream"
            return scan
        video = container.streams.video[0]
        ctx = video.codec_context
        # Deblocking only on key frames: ~15% faster. The first frame (a key frame) is exact;
        # the others are only seen as 160-pixel luma, where it changes nothing that matters.
        ctx.options = {"skip_loop_filter": "nokey"}
        scan.container = container.format.name
        scan.codec = ctx.name
        scan.fps = Fraction(video.average_rate or video.guessed_rate or 0)
        scan.declared_frames = int(video.frames or 0)
        if video.duration is not None and video.time_base is not None:
            scan.declared_duration = float(video.duration * video.time_base)
        elif container.duration:
            scan.declared_duration = container.duration / 1_000_000
        streams: list[Any] = [video]
        audio = container.streams.audio[0] if container.streams.audio else None
        scan.has_audio = audio is not None
        if audio is not None:
            streams.append(audio)
        size: tuple[int, int] | None = None
        failure = None
        try:
            for packet in container.demux(*streams):
                for frame in packet.decode():
                    if isinstance(frame, av.AudioFrame):
                        _add_audio(scan, frame)
                        continue
                    if not isinstance(frame, av.VideoFrame):
                        continue
                    if size is None:
                        size = _analysis_size(frame.width, frame.height)
                        scan.first, scan.full_range = frame, _is_full_range(frame)
                    scan.lumas.append(_small_luma(frame, *size))
                    time = frame.time
                    scan.times.append(float(time) if time is not None
                                      else len(scan.times) * scan.frame_seconds)
        except (av.FFmpegError, ValueError) as exc:
            failure = _reason(exc)
        if scan.first is not None:
            _stream_size(scan, video)
    scan.error = _damage(scan, path, failure)
    return scan


def _reason(exc: BaseException) -> str:
    """An FFmpeg error's text without the file path it repeats."""
    return str(getattr(exc, "strerror", None) or exc)


def _stream_size(scan: _Scan, video: Any) -> None:
    """Display size and aspect (sample aspect ratio and a ±90° rotation applied)."""
    width, height = scan.first.width, scan.first.height
    sar = video.sample_aspect_ratio or video.codec_context.sample_aspect_ratio
    sar_value = float(sar) if sar else 1.0
    if abs(int(getattr(scan.first, "rotation", 0) or 0)) % 180 == 90:
        width, height, sar_value = height, width, 1 / sar_value
    scan.width, scan.height = width, height
    scan.display_aspect = width * sar_value / height


def _add_audio(scan: _Scan, frame: Any) -> None:
    samples = frame.to_ndarray()
    if np.issubdtype(samples.dtype, np.integer):
        samples = samples.astype(np.float64) / float(np.iinfo(samples.dtype).max)
    flat = np.ravel(samples)
    scan.audio_sum_sq += float(np.dot(flat, flat))
    scan.audio_samples += flat.size


def _damage(scan: _Scan, path: Path, failure: str | None) -> str | None:
    """Why the file is not a whole, valid video, or None: no frame decodes, decoding failed,
    or the index promises more frames (or time) than decode (a truncated download)."""
    why = f" ({failure})" if failure else ""
    if scan.first is None:
        return f"{path.name}: no video frame decodes{why}"
    if scan.declared_frames and scan.frames < scan.declared_frames:
        return (f"{path.name} is truncated or corrupt: {scan.frames} of "
                f"{scan.declared_frames} frames decode{why}")
    if not scan.declared_frames and scan.declared_duration:
        missing = scan.declared_duration - scan.duration
        if missing > max(2 * scan.frame_seconds, 0.05 * scan.declared_duration):
            return (f"{path.name} is truncated or corrupt: {scan.duration:.2f} s of "
                    f"{scan.declared_duration:.2f} s decode{why}")
    if failure:
        return f"{path.name} is corrupt: decoding failed after {scan.duration:.2f} s{why}"
    return None


# ----------------------------------------------------------------------------- stream checks
def _container_check(scan: _Scan) -> Check:
    if scan.error:
        return Check("container", False, scan.frames or None, scan.declared_frames or None,
                     scan.error + "; rebuild the clip")
    return Check("container", True, scan.frames, scan.declared_frames or None,
                 f"{scan.container.split(',')[0]}: {scan.frames} frames decode")


def _codec_check(scan: _Scan, t: ResolvedThresholds) -> Check:
    if t.codec is None:
        return Check("codec", True, scan.codec, None, f"{scan.codec} (any codec accepted)")
    ok = scan.codec == t.codec
    message = scan.codec if ok else f"the video is {scan.codec}, {t.codec} was expected"
    return Check("codec", ok, scan.codec, t.codec, message)


def _resolution_check(scan: _Scan, expect: ReviewExpect, t: ResolvedThresholds) -> Check:
    got, want = f"{scan.width}x{scan.height}", f"{expect.width}x{expect.height}"
    ok = (abs(scan.width - expect.width) <= t.size_tolerance * expect.width
          and abs(scan.height - expect.height) <= t.size_tolerance * expect.height)
    message = got if ok else f"the clip is {got}, the request was {want}"
    return Check("resolution", ok, got, want, message)


def _aspect_check(scan: _Scan, expect: ReviewExpect, t: ResolvedThresholds) -> Check:
    want = expect.width / expect.height
    ok = abs(scan.display_aspect - want) <= t.aspect_tolerance * want
    got = _num(scan.display_aspect)
    message = f"{got:g}" if ok else f"display aspect {got:g}, the request was {want:.4g}"
    return Check("aspect_ratio", ok, got, _num(want), message)


def _fps_check(scan: _Scan, expect: ReviewExpect, t: ResolvedThresholds) -> Check:
    got, want = float(scan.fps), float(expect.fps)
    if t.fps_tolerance is None:
        note = "" if abs(got - want) < 0.01 else f" (requested {want:g}; the model picks its rate)"
        return Check("fps", True, _num(got), None, f"{got:g} fps{note}")
    ok = abs(got - want) <= t.fps_tolerance
    message = f"{got:g} fps" if ok else f"it runs at {got:g} fps, the request was {want:g}"
    return Check("fps", ok, _num(got), _num(want), message)


def _duration_check(scan: _Scan, expect: ReviewExpect, t: ResolvedThresholds) -> Check:
    frame = max(float(1 / expect.fps) if expect.fps else 0.0, scan.frame_seconds)
    allowed = t.duration_tolerance_frames * frame
    got = scan.duration
    ok = abs(got - expect.duration) <= allowed + 1e-6
    message = (f"{got:.3f} s ({scan.frames} frames)" if ok else
               f"it lasts {got:.3f} s ({scan.frames} frames), the request was "
               f"{expect.duration:g} s ± {allowed:.3f} s")
    return Check("duration", ok, _num(got), _num(expect.duration), message)


def _audio_checks(scan: _Scan, expect: ReviewExpect, t: ResolvedThresholds) -> list[Check]:
    level = scan.audio_dbfs
    value = _num(level, 1) if level is not None else None
    if not scan.has_audio:
        ok = not expect.audio
        message = "no audio track (none requested)" if ok else (
            "no audio track, one was requested")
        return [Check("audio", ok, None, "required" if expect.audio else None, message)]
    if level is None:
        return [Check("audio", not expect.audio, None, "required" if expect.audio else None,
                      "the audio track has no samples")]
    note = "" if expect.audio else " (not requested)"
    checks = [Check("audio", True, value, "required" if expect.audio else None,
                    f"audio track, RMS {level:.1f} dBFS{note}")]
    if expect.has_dialogue and expect.audio:
        ok = level >= t.audio_silence_dbfs
        message = (f"RMS {level:.1f} dBFS" if ok else
                   f"the clip has dialogue but its audio is silent (RMS {level:.1f} dBFS, "
                   f"below {t.audio_silence_dbfs:g} dBFS)")
        checks.append(Check("dialogue_audio", ok, value, t.audio_silence_dbfs, message))
    return checks


# ----------------------------------------------------------------------------- picture checks
@dataclass(frozen=True)
class _Frames:
    """Per-frame measures on the shrunk luma frames."""

    luma: np.ndarray  # N x h x w floats
    times: list[float]
    bad: np.ndarray  # black or blank, N bools
    diff: np.ndarray  # mean |luma[i] - luma[i-1]|, N-1
    hist_distance: np.ndarray  # 1 - overlap of 32-bin luma histograms, N-1


def _measure(scan: _Scan, t: ResolvedThresholds) -> _Frames:
    luma = scan.luma_stack()
    n = luma.shape[0]
    dark = (luma < t.black_luma).reshape(n, -1).mean(axis=1) >= t.black_pixel_ratio
    flat = luma.reshape(n, -1).std(axis=1) < t.blank_std
    diff = np.abs(np.diff(luma, axis=0)).reshape(n - 1, -1).mean(axis=1) if n > 1 else np.zeros(0)
    hist = _luma_histograms(luma[:, ::2, ::2] if luma.shape[2] >= 64 else luma)  # 1/4: plenty
    hist_distance = 1 - np.minimum(hist[1:], hist[:-1]).sum(axis=1)
    return _Frames(luma, scan.times, dark | flat, diff, hist_distance)


def _luma_histograms(luma: np.ndarray, bins: int = 16) -> np.ndarray:
    """One normalised luma histogram per frame (N x bins), each value shared linearly between
    its two nearest bins so that a code or two of drift does not jump a bin boundary."""
    n = luma.shape[0]
    position = np.clip(luma.reshape(n, -1), 0.0, 1.0) * bins - 0.5
    low = np.floor(position)
    upper = position - low
    offset = bins * np.arange(n)[:, None]
    below = np.clip(low, 0, bins - 1).astype(np.int64) + offset
    above = np.clip(low + 1, 0, bins - 1).astype(np.int64) + offset
    counts = (np.bincount(below.ravel(), weights=(1 - upper).ravel(), minlength=n * bins)
              + np.bincount(above.ravel(), weights=upper.ravel(), minlength=n * bins))
    return counts.reshape(n, bins) / position.shape[1]


def _black_check(m: _Frames, scan: _Scan, t: ResolvedThresholds) -> Check:
    count = int(m.bad.sum())
    seconds = count * scan.frame_seconds
    ok = seconds <= t.black_max_seconds + 1e-9
    if count == 0:
        return Check("black_frames", True, 0, t.black_max_seconds, "no black or blank frames")
    first = m.times[int(np.argmax(m.bad))] - m.times[0]
    message = (f"{count} black or blank frame{'s' if count > 1 else ''} ({seconds:.2f} s), "
               f"the first at {first:.2f} s")
    if not ok:
        message += f"; at most {t.black_max_seconds:g} s allowed"
    return Check("black_frames", ok, count, t.black_max_seconds, message)


def may_hold_still(expect: ReviewExpect) -> tuple[bool, str]:
    """Whether the clip may show a still picture, and why: a slate, a fixed camera, camera
    words with no move (as the local renderer reads them), or no camera at all from ``local``."""
    from aivpbuild.media.camera import parse_camera

    if expect.slate:
        return True, "a slate"
    if expect.camera_fixed:
        return True, "camera_fixed is set"
    if expect.camera and expect.camera.strip():
        if parse_camera(expect.camera).is_static:
            return True, f"camera {expect.camera.strip()!r} does not move"
        return False, f"camera {expect.camera.strip()!r} should move"
    if expect.provider == "local":
        return True, "no camera move was asked of the local renderer"
    return False, "a generated shot should move"


def _still_stretches(m: _Frames, epsilon: float) -> list[tuple[int, int]]:
    """(start, end) frame ranges whose frames all stay within ``epsilon`` of the first one;
    black/blank frames break a stretch (they are reported on their own)."""
    stretches: list[tuple[int, int]] = []
    start = None
    for i in range(len(m.times)):
        if m.bad[i]:
            if start is not None:
                stretches.append((start, i - 1))
            start = None
            continue
        if start is None:
            start = i
            continue
        if float(np.abs(m.luma[i] - m.luma[start]).mean()) >= epsilon:
            stretches.append((start, i - 1))
            start = i
    if start is not None:
        stretches.append((start, len(m.times) - 1))
    return stretches


def _still_limit(stretch: tuple[int, int], m: _Frames, scan: _Scan, still_ok: bool,
                 t: ResolvedThresholds) -> float | None:
    """How long this stretch may hold. A moving camera eases in and out, so a stretch at either
    end (but not one covering the whole clip) gets ``freeze_edge_fraction`` of the duration
    more."""
    if still_ok:
        return t.static_freeze_max_seconds
    start, end = stretch
    last = len(m.times) - 1
    at_edge = (start == 0) != (end == last)
    return t.freeze_max_seconds + (t.freeze_edge_fraction * scan.duration if at_edge else 0.0)


def _frozen_check(m: _Frames, scan: _Scan, expect: ReviewExpect,
                  t: ResolvedThresholds) -> Check:
    still_ok, why = may_hold_still(expect)
    stretches = [s for s in _still_stretches(m, t.freeze_epsilon) if s[1] > s[0]]
    if not stretches:
        whole = (0, len(m.times) - 1)
        return Check("frozen", True, 0.0, _still_limit(whole, m, scan, still_ok, t),
                     "no still stretch")

    def held(s: tuple[int, int]) -> float:
        return (s[1] - s[0] + 1) * scan.frame_seconds

    def excess(s: tuple[int, int]) -> float:
        limit = _still_limit(s, m, scan, still_ok, t)
        return -math.inf if limit is None else held(s) - limit

    worst = max(stretches, key=excess)
    if excess(worst) <= 1e-9:
        worst = max(stretches, key=held)
    limit = _still_limit(worst, m, scan, still_ok, t)
    seconds, at = held(worst), m.times[worst[0]] - m.times[0]
    ok = limit is None or seconds <= limit + 1e-9
    if ok:
        message = f"longest still stretch {seconds:.2f} s at {at:.2f} s"
        message += f" (allowed: {why})" if still_ok else ""
    else:
        message = f"frozen for {seconds:.2f} s from {at:.2f} s, more than {limit:.2f} s, but {why}"
    return Check("frozen", ok, _num(seconds, 3), None if limit is None else _num(limit, 3),
                 message)


def _spikes(values: np.ndarray, floor: float, ratio: float, skip: np.ndarray) -> list[int]:
    """Indices where ``values`` reach ``floor``, ``ratio`` x the median of their neighbourhood
    and ``ratio / 2`` x both adjacent values (a dissolve changes over several frames alike)."""
    found = []
    for i, v in enumerate(values):
        if skip[i] or v < floor:
            continue
        lo, hi = max(0, i - _CUT_WINDOW), min(len(values), i + _CUT_WINDOW + 1)
        around = np.concatenate([values[lo:i], values[i + 1:hi]])
        adjacent = max(values[i - 1] if i > 0 else 0.0, values[i + 1] if i + 1 < len(values)
                       else 0.0)
        if v >= ratio * (float(np.median(around)) if around.size else 0.0) and \
                v >= ratio / 2 * adjacent:
            found.append(i)
    return found


def _cut_check(m: _Frames, t: ResolvedThresholds) -> Check:
    """Hard cuts: a jump in frame difference or histogram distance far above its neighbours.
    A flash (up to three frames after which the picture comes back) is not a cut, and pairs
    with a black or blank frame are left to the black-frame check."""
    skip = m.bad[1:] | m.bad[:-1]
    # A histogram jump counts when the pictures changed too (a re-encoded key frame can shift
    # the levels of flat areas without any change of shot).
    moved = m.diff >= t.cut_min_diff / 2
    pairs = sorted(set(_spikes(m.diff, t.cut_min_diff, t.cut_ratio, skip))
                   | set(_spikes(m.hist_distance, t.cut_min_hist_distance, t.cut_ratio,
                                 skip | ~moved)))
    # Pair i joins frames i and i+1: a jump at i and another at j <= i+3 after which frame
    # j+1 looks like frame i again is a flash or an inserted glitch, not a change of shot.
    flash: set[int] = set()
    for i in pairs:
        for j in pairs:
            if i < j <= i + 3 and float(np.abs(m.luma[j + 1] - m.luma[i]).mean()) < \
                    t.cut_min_diff / 2:
                flash |= {i, j}
    cuts = [i for i in pairs if i not in flash]
    if not cuts:
        return Check("hard_cut", True, 0, 0, "no cut inside the shot")
    where = ", ".join(f"{m.times[i + 1] - m.times[0]:.2f} s" for i in cuts)
    return Check("hard_cut", False, len(cuts), 0,
                 f"{len(cuts)} hard cut{'s' if len(cuts) > 1 else ''} inside the shot at {where}")


# ----------------------------------------------------------------------------- frame compares
def _colour_args(frame: Any) -> dict[str, Any]:
    """Source colour matrix and range for converting a decoded frame to RGB: its tags, else
    BT.709 for HD and BT.601 for SD (what players assume)."""
    from av.video.reformatter import Colorspace

    tagged = int(frame.colorspace)
    if tagged in (1, 4, 5, 6, 7, 9):  # 709, FCC, 470BG, 170M, 240M, BT.2020
        space: Any = 5 if tagged == 6 else tagged
    else:
        space = Colorspace.ITU709 if frame.height >= 720 else Colorspace.ITU601
    rng = int(frame.color_range)
    return {"src_colorspace": space, "src_color_range": rng if rng in (1, 2) else None}


def frame_rgb(frame: Any, width: int | None = None, height: int | None = None) -> np.ndarray:
    """A decoded frame as an RGB uint8 array, optionally shrunk (area average)."""
    from av.video.reformatter import Interpolation

    # ACCURATE_RND: the fast path is off by a code or two (and not the same for every pixel).
    rgb = frame.reformat(width=width, height=height, format="rgb24",
                         interpolation=Interpolation.AREA | Interpolation.ACCURATE_RND,
                         threads=1, **_colour_args(frame))
    return np.asarray(rgb.to_ndarray())


def _compare_size(width: int, height: int) -> tuple[int, int]:
    if width <= COMPARE_WIDTH:
        return width, height
    return COMPARE_WIDTH, max(12, round(height * COMPARE_WIDTH / width))


def compare_frames(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(colour-histogram overlap, luma SSIM) of two RGB images of one size (COMPARE_WIDTH)."""
    return histogram_overlap(a, b), ssim(a, b)


def _load_keyframe(path: Path, width: int, height: int) -> np.ndarray:
    """The keyframe cover-fitted to ``width`` x ``height`` (RGB)."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.draft("RGB", (width * 4, height * 4))  # JPEG: decode at a reduced scale
            return cover_fit(np.asarray(image.convert("RGB")), width, height)
    except (OSError, ValueError) as exc:
        raise MediaError(f"cannot read the keyframe {path} to review against ({exc})",
                         hint="restore the image the clip was generated from") from None


def _keyframe_checks(scan: _Scan, keyframe: Path, t: ResolvedThresholds) -> list[Check]:
    """The first frame against the input keyframe, cover-fitted to the frame's shape."""
    width, height = _compare_size(scan.first.width, scan.first.height)
    first = frame_rgb(scan.first, width, height)
    key = _load_keyframe(keyframe, width, height)
    overlap, similarity = compare_frames(first, key)
    scene_ok, framing_ok = overlap >= t.keyframe_min_overlap, similarity >= t.keyframe_min_ssim
    scene = (f"colour overlap {overlap:.3f} with {keyframe.name}" if scene_ok else
             f"the first frame does not look like {keyframe.name}: colour overlap {overlap:.3f}"
             f" < {t.keyframe_min_overlap:g}")
    framing = (f"SSIM {similarity:.3f} with {keyframe.name}" if framing_ok else
               f"the first frame is framed unlike {keyframe.name}: SSIM {similarity:.3f} < "
               f"{t.keyframe_min_ssim:g}")
    return [Check("keyframe_scene", scene_ok, _num(overlap), t.keyframe_min_overlap, scene),
            Check("keyframe_framing", framing_ok, _num(similarity), t.keyframe_min_ssim,
                  framing)]


# ----------------------------------------------------------------------------- public entry
def review_clip(path: Path, expect: ReviewExpect, thresholds: Thresholds = None) -> ReviewResult:
    """Review one clip in a single decode pass. An unreadable, truncated or corrupt file gives
    a failed ``container`` check (and no others), not an exception; MediaError only when the
    keyframe to compare against cannot be read."""
    t = _resolve(thresholds, expect.provider)
    scan = _scan(path)
    container = _container_check(scan)
    if not container.passed:
        return _result([container])
    checks = [container, _codec_check(scan, t), _resolution_check(scan, expect, t),
              _aspect_check(scan, expect, t), _fps_check(scan, expect, t),
              _duration_check(scan, expect, t), *_audio_checks(scan, expect, t)]
    frames = _measure(scan, t)
    checks += [_black_check(frames, scan, t), _frozen_check(frames, scan, expect, t),
               _cut_check(frames, t)]
    if expect.keyframe is not None:
        checks += _keyframe_checks(scan, expect.keyframe, t)
    return _result(checks)


def _edge_frame(path: Path, which: Literal["first", "last"]) -> Any:
    """The first or last decoded video frame; MediaError naming the file if none decodes."""
    import av

    try:
        with av.open(str(path)) as container:
            video = container.streams.video[0]
            found = None
            for frame in container.decode(video):
                found = frame
                if which == "first":
                    break
    except (av.FFmpegError, OSError, ValueError, IndexError) as exc:
        raise MediaError(f"{path.name} is not a readable video ({_reason(exc)})",
                         hint="rebuild the clip") from None
    if found is None:
        raise MediaError(f"{path.name}: no video frame decodes", hint="rebuild the clip")
    return found


def continuity_check(prev_clip: Path, next_clip: Path, thresholds: Thresholds = None) -> Check:
    """The last frame of ``prev_clip`` against the first of ``next_clip``: the colour-histogram
    overlap says whether the scene carries over the cut (SSIM is reported for reference)."""
    t = _resolve(thresholds, "")
    try:
        last, first = _edge_frame(prev_clip, "last"), _edge_frame(next_clip, "first")
    except MediaError as exc:
        return Check("continuity", False, None, t.continuity_min_overlap,
                     f"{exc.message}; rebuild the clip")
    width, height = _compare_size(first.width, first.height)
    a = cover_fit(frame_rgb(last, *_compare_size(last.width, last.height)), width, height)
    b = frame_rgb(first, width, height)
    overlap, similarity = compare_frames(a, b)
    ok = overlap >= t.continuity_min_overlap
    pair = f"{prev_clip.name} → {next_clip.name}"
    message = (f"{pair}: colour overlap {overlap:.3f}, SSIM {similarity:.3f}" if ok else
               f"continuity break {pair}: the next clip opens on a different scene (colour "
               f"overlap {overlap:.3f} < {t.continuity_min_overlap:g}, SSIM {similarity:.3f})")
    return Check("continuity", ok, _num(overlap), t.continuity_min_overlap, message)
