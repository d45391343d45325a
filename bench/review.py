"""Review benchmark: the technical review of 5 s 1280x720 24 fps clips.

    python bench/review.py [N]          # N clips for the parallel figure (default 100)

Renders four 5 s 720p image-to-video clips with the local renderer (a photo-like 1920x1080
keyframe, four camera moves, an audio track), then prints:
  - the time of one review, with and without the keyframe comparison (best and median of 7),
    beside the time PyAV alone takes to open and decode the same file (the floor);
  - the wall time of reviewing N clips (the four, cycled) with 2 worker processes, with and
    without the keyframe comparison;
  - the time of a contact sheet of the four clips.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aivpbuild.media.contact_sheet import contact_sheet
from aivpbuild.media.render import RenderSpec, render_clip
from aivpbuild.media.review import ReviewExpect, review_clip

W, H, FPS, SECONDS = 1280, 720, Fraction(24), 5.0
CAMERAS = ("slow push in", "pan left", "handheld", "slow pull out, tilt up")
TARGET_ONE, TARGET_MANY = 0.3, 20.0


def photo(width: int, height: int, seed: int) -> Image.Image:
    """A photo-like keyframe: 1/f colour noise (natural-image statistics) over a sky gradient."""
    rng = np.random.default_rng(seed)
    fy, fx = np.fft.fftfreq(height)[:, None], np.fft.rfftfreq(width)[None, :]
    f = np.hypot(fx, fy)
    f[0, 0] = 1
    channels = []
    for _ in range(3):
        spectrum = (rng.normal(size=f.shape) + 1j * rng.normal(size=f.shape)) / f**1.1
        spectrum[0, 0] = 0
        x = np.fft.irfft2(spectrum, s=(height, width))
        channels.append((x - x.mean()) / x.std())
    detail = np.stack(channels, -1) * np.array([24, 21, 18])
    sky = np.linspace(0, 1, height)[:, None, None] * np.array([-60, -20, 40]) + [120, 130, 140]
    return Image.fromarray(np.clip(detail + sky, 0, 255).astype(np.uint8))


def expect_for(camera: str, keyframe: Path | None) -> ReviewExpect:
    return ReviewExpect(W, H, FPS, SECONDS, audio=True, has_dialogue=False, camera=camera,
                        camera_fixed=None, keyframe=keyframe)


def decode_only(path: Path) -> None:
    import av

    with av.open(str(path)) as container:
        for _ in container.decode(video=0):
            pass


def timed(fn: object, *args: object, repeat: int = 7) -> tuple[float, float]:
    """(best, median) wall seconds."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn(*args)  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times)


def review_job(job: tuple[Path, str, Path | None]) -> bool:
    clip, camera, keyframe = job
    return review_clip(clip, expect_for(camera, keyframe)).passed


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        key = root / "key.png"
        photo(1920, 1080, seed=3).save(key)
        clips = []
        for i, camera in enumerate(CAMERAS):
            out = root / f"clip{i}.mp4"
            render_clip(RenderSpec(f"shot-{i}", "bench", camera, SECONDS, FPS, W, H, key,
                                   audio=True, seed=i), out)
            clips.append((out, camera))
        clip, camera = clips[0]
        size_mb = clip.stat().st_size / 1e6
        result = review_clip(clip, expect_for(camera, key))
        print(f"5 s {W}x{H} {float(FPS):g} fps clip, {size_mb:.1f} MB, review "
              f"{'passed' if result.passed else 'FAILED: ' + result.summary()}")
        floor = timed(decode_only, clip)
        bare = timed(review_clip, clip, expect_for(camera, None))
        keyed = timed(review_clip, clip, expect_for(camera, key))
        print(f"  PyAV open + decode only : best {floor[0]:.3f} s, median {floor[1]:.3f} s")
        print(f"  review                  : best {bare[0]:.3f} s, median {bare[1]:.3f} s "
              f"(target ≤ {TARGET_ONE} s)")
        print(f"  review + 1080p keyframe : best {keyed[0]:.3f} s, median {keyed[1]:.3f} s")

        for keyframe in (key, None):
            jobs = [(c, cam, keyframe) for c, cam in clips] * (count // len(clips) + 1)
            start = time.perf_counter()
            with ProcessPoolExecutor(max_workers=2) as pool:
                passed = sum(pool.map(review_job, jobs[:count]))
            many = time.perf_counter() - start
            label = "with keyframes" if keyframe else "no keyframe"
            print(f"{count} clips ({label}), 2 worker processes: {many:.1f} s wall, "
                  f"{passed}/{count} passed (target ≤ {TARGET_MANY:g} s for 100)")

        sheet = timed(contact_sheet, [(f"shot-{i}", c) for i, (c, _) in enumerate(clips)],
                      root / "sheet.png", repeat=3)
        print(f"contact sheet of {len(clips)} clips: {sheet[0]:.2f} s")


if __name__ == "__main__":
    main()
