"""Renderer benchmark: a 5 s 1280x720 24 fps image-to-video push-in, against ffmpeg's zoompan.

    python bench/render.py [--no-example]

Prints, for aivpbuild's renderer and for the same eased zoom done by libavfilter's `zoompan`
through PyAV (encoded with the same x264 settings, single-threaded, so CPU time is one core):
CPU and wall time, the time ratio, and the jitter of each. Jitter: four patches around the
centre are tracked frame to frame by sub-pixel phase correlation; their cumulative positions
give a per-frame scale (left/right and top/bottom separations) and shift (their mean), and
the residual of each from a smooth fit (a degree-7 polynomial in time) is reported as RMS and
max, in pixels at the patches' distance from the centre. Then the wall time of building the
example project from scratch with -j 2.
"""

from __future__ import annotations

import itertools
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aivpbuild.media.camera import ZOOM
from aivpbuild.media.encode import VideoWriter, rgb_frames
from aivpbuild.media.render import RenderSpec, render_clip
from aivpbuild.media.render import frames as render_frames
from tests.media.motion import shift, texture

W, H, FPS, SECONDS = 1280, 720, Fraction(24), 5
FRAMES = int(SECONDS * FPS)
PATCH, REACH = 128, 320  # patch size, and patch-centre distance from the frame centre (px)


def zoompan_frames(keyframe: Path) -> Iterator[np.ndarray]:
    """The renderer's push-in (zoom 1 → 1 + ZOOM, the same ease) by ffmpeg's zoompan, as RGB."""
    image = Image.open(keyframe).convert("RGB")
    graph = av.filter.Graph()
    source = graph.add_buffer(width=image.width, height=image.height,
                              format=av.VideoFormat("rgb24"), time_base=Fraction(1, 24))
    t = f"(on/{FRAMES - 1})"
    eased = f"({t}*{t}*{t}*({t}*(6*{t}-15)+10))"
    zoom = graph.add("zoompan", f"z='1+{ZOOM}*{eased}':x='iw/2-(iw/zoom/2)':y='ih/2-(ih/zoom/2)'"
                                f":d={FRAMES}:s={W}x{H}:fps=24")
    sink = graph.add("buffersink")
    source.link_to(zoom)
    zoom.link_to(sink)
    graph.configure()
    frame = av.VideoFrame.from_ndarray(np.asarray(image), format="rgb24")
    frame.pts = 0
    frame.time_base = Fraction(1, 24)
    graph.push(frame)
    graph.push(None)
    while True:
        try:
            result = graph.pull()
        except (av.BlockingIOError, av.EOFError):
            return
        assert isinstance(result, av.VideoFrame)
        yield result.to_ndarray(format="rgb24")


def zoompan(keyframe: Path, out: Path) -> None:
    """zoompan's frames encoded exactly as aivpbuild encodes."""
    with VideoWriter(out, W, H, FPS) as writer:
        for frame in zoompan_frames(keyframe):
            writer.write(frame)


def jitter(frames: Iterable[np.ndarray]) -> dict[str, tuple[float, float]]:
    """RMS and max residual (px) of the per-frame scale and shift from a smooth path.

    ``frames``: RGB images, or yuv420p planes / luma (2-D: the top H rows are luma).
    """
    cx, cy, half = W // 2, H // 2, PATCH // 2
    centres = {"left": (cx - REACH, cy), "right": (cx + REACH, cy),
               "top": (cx, cy - REACH // 2), "bottom": (cx, cy + REACH // 2)}
    boxes = {n: (slice(y - half, y + half), slice(x - half, x + half))
             for n, (x, y) in centres.items()}
    patches: dict[str, list[np.ndarray]] = {n: [] for n in centres}
    for frame in frames:
        luma = frame[:H] if frame.ndim == 2 else frame
        for name, box in boxes.items():
            patches[name].append(np.array(luma[box]))
    tracks = {}
    for name, series in patches.items():
        steps = np.array([shift(a, b) for a, b in itertools.pairwise(series)])
        tracks[name] = np.vstack([[0.0, 0.0], np.cumsum(steps, axis=0)])
    measured = {
        "scale x": (tracks["right"][:, 0] - tracks["left"][:, 0]) / 2,
        "scale y": (tracks["bottom"][:, 1] - tracks["top"][:, 1]) / 2,
        "shift x": sum(tracks[n][:, 0] for n in tracks) / 4,
        "shift y": sum(tracks[n][:, 1] for n in tracks) / 4,
    }
    t = np.linspace(-1, 1, len(patches["left"]))
    result = {}
    for name, values in measured.items():
        residual = values - np.polynomial.Polynomial.fit(t, values, 7)(t)
        result[name] = (float(np.sqrt((residual**2).mean())), float(np.abs(residual).max()))
    return result


def timed(fn: Callable[[], object]) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of one call."""
    cpu, wall = time.process_time(), time.perf_counter()
    fn()
    return time.process_time() - cpu, time.perf_counter() - wall


def example_build() -> float:
    """Wall time of building the example project from scratch with -j 2."""
    import shutil
    import subprocess

    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp) / "examples"
        shutil.copytree(Path(__file__).resolve().parents[1] / "examples", project,
                        ignore=shutil.ignore_patterns("video", ".aivp", "aivp.lock"))
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "aivpbuild", "-C", str(project), "-j", "2"],
                       check=True, capture_output=True)
        return time.perf_counter() - start


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        key = root / "key.png"
        Image.fromarray(texture(1920, 1080, seed=11)).save(key)
        spec = RenderSpec("bench", "benchmark", "push in", SECONDS, FPS, W, H, key)
        ours = min((timed(lambda: render_clip(spec, root / "ours.mp4")) for _ in range(3)),
                   key=lambda r: r[0])
        theirs = min((timed(lambda: zoompan(key, root / "zoompan.mp4")) for _ in range(3)),
                     key=lambda r: r[0])
        print(f"5 s 1280x720 24 fps I2V push-in (best of 3, one core):\n"
              f"  aivpbuild {ours[0]:.2f} s CPU, {ours[1]:.2f} s wall (target <= 3 s)\n"
              f"  zoompan   {theirs[0]:.2f} s CPU, {theirs[1]:.2f} s wall\n"
              f"  ratio aivpbuild / zoompan: {ours[0] / theirs[0]:.2f} (CPU)")
        print(f"jitter: residual from a smooth path, px at {REACH} px from the centre "
              "(RMS / max)")
        runs = (("aivpbuild, frames as rendered", lambda: render_frames(spec)),
                ("zoompan, frames as filtered", lambda: zoompan_frames(key)),
                ("aivpbuild, decoded MP4", lambda: rgb_frames(root / "ours.mp4")),
                ("zoompan, decoded MP4", lambda: rgb_frames(root / "zoompan.mp4")))
        for label, source in runs:
            parts = "  ".join(f"{k} {rms:.3f}/{worst:.3f}"
                              for k, (rms, worst) in jitter(source()).items())
            print(f"  {label:30s} {parts}")
    if "--no-example" not in sys.argv:
        print(f"example project (6 clips + frame + edit) from scratch with -j 2: "
              f"{example_build():.1f} s wall (target <= 15 s)")


if __name__ == "__main__":
    main()
