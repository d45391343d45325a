"""Renderer benchmark: a 5 s 1280x720 24 fps image-to-video push-in, against ffmpeg's zoompan.

    python bench/render.py

Prints the CPU time of aivpbuild's renderer (one core: x264 runs single-threaded) for the clip,
the same zoom done by libavfilter's `zoompan` through PyAV (same encoder settings), the time
ratio, and the jitter of both: the frame-to-frame motion of an off-centre patch, measured by
sub-pixel phase correlation, minus its local (7-frame) mean (RMS and max, in pixels); and the
wall time of building the example project from scratch with -j 2.
"""

from __future__ import annotations

import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import itertools

from aivpbuild.media.camera import parse_camera
from aivpbuild.media.encode import VideoWriter, rgb_frames
from aivpbuild.media.render import RenderSpec, render_clip
from tests.media.motion import shift, texture

W, H, FPS, SECONDS = 1280, 720, Fraction(24), 5
FRAMES = int(SECONDS * FPS)


def zoompan(keyframe: Path, out: Path, end_zoom: float) -> None:
    """The same push-in with ffmpeg's zoompan filter, encoded like aivpbuild encodes."""
    image = Image.open(keyframe).convert("RGB")
    graph = av.filter.Graph()
    source = graph.add_buffer(width=image.width, height=image.height, format="rgb24",
                              time_base=Fraction(1, 24))
    step = (end_zoom - 1) / (FRAMES - 1)
    zoom = graph.add("zoompan", f"z='1+{step:.8f}*on':x='iw/2-(iw/zoom/2)':y='ih/2-(ih/zoom/2)'"
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
    with VideoWriter(out, W, H, FPS) as writer:
        while True:
            try:
                result = graph.pull()
            except (av.BlockingIOError, av.EOFError):
                break
            writer.write(result.to_ndarray(format="rgb24"))


def jitter(video: Path) -> tuple[float, float]:
    """RMS and max (px) of frame-to-frame motion of an off-centre patch minus its local mean
    (a centred 7-frame moving average): smooth motion scores ~0, stutter scores high."""
    frames = list(rgb_frames(video))
    patch = (slice(40, 296), slice(80, 336))
    steps = np.array([shift(a[patch], b[patch]) for a, b in itertools.pairwise(frames)])
    kernel = np.ones(7) / 7
    residuals = []
    for axis in (0, 1):
        local = np.convolve(steps[:, axis], kernel, mode="valid")
        residuals.append(steps[3:-3, axis] - local)
    residual = np.concatenate(residuals)
    return float(np.sqrt((residual ** 2).mean())), float(np.abs(residual).max())


def cpu(fn: object, *args: object) -> float:
    start = time.process_time()
    fn(*args)  # type: ignore[operator]
    return time.process_time() - start


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
        camera = "push in"
        plan = parse_camera(camera)
        end_zoom = plan.at(1.0)[2] / plan.at(0.0)[2]
        spec = RenderSpec("bench", "benchmark", camera, SECONDS, FPS, W, H, key)
        ours = min(cpu(render_clip, spec, root / "ours.mp4") for _ in range(3))
        theirs = min(cpu(zoompan, key, root / "zoompan.mp4", end_zoom) for _ in range(3))
        print(f"5 s 1280x720 24 fps I2V push-in: aivpbuild {ours:.2f} s CPU (target ≤ 3 s), "
              f"zoompan {theirs:.2f} s CPU, ratio {ours / theirs:.2f}")
        for name in ("ours", "zoompan"):
            rms, worst = jitter(root / f"{name}.mp4")
            label = "aivpbuild" if name == "ours" else "zoompan"
            print(f"  jitter {label:9s}: RMS {rms:.3f} px, max {worst:.3f} px")
    print(f"example project (6 clips + frame + edit) from scratch with -j 2: {example_build():.1f} s "
          "wall (target ≤ 15 s)")


if __name__ == "__main__":
    main()
