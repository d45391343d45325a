"""No-op benchmark: how long `aivpbuild status` and `aivpbuild build` take when nothing changed.

    python bench/noop.py 1000 10000        # project sizes to measure (default: 1000 10000)

For each N it generates a project of N clips (each with its own small keyframe) in a temp
directory, builds it once with the local renderer at a tiny size, then times the no-op
commands as whole processes with hyperfine when it is installed (else a repeat loop with
wall time), and reports peak memory from /usr/bin/time -v (or getrusage). Also times
`aivpbuild --help`.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from PIL import Image

TARGETS = {1000: 0.4, 10000: 1.2}


def make_project(root: Path, n: int) -> None:
    frames = root / "image" / "frames"
    frames.mkdir(parents=True)
    clips = {}
    for i in range(n):
        Image.new("RGB", (16, 16), (i % 256, (i // 256) % 256, 90)).save(frames / f"s{i:05d}.png")
        clips[f"s{i:05d}"] = {
            "prompt": f"Shot {i}: a long enough prompt describing a scene with a few details, "
                      "light, weather, movement and mood, like real prompts do. " * 3,
            "image": f"image/frames/s{i:05d}.png",
            "camera": "slow push-in",
        }
    data = {"version": 1, "name": f"bench-{n}",
            "defaults": {"provider": "local", "resolution": "16x16", "duration": 1, "fps": 1, "seed": 1},
            "clips": clips}
    (root / "project.aivp.yaml").write_text(yaml.safe_dump(data, sort_keys=False))


def time_command(cmd: list[str], runs: int = 7) -> dict[str, float]:
    if shutil.which("hyperfine"):
        with tempfile.NamedTemporaryFile(suffix=".json") as out:
            subprocess.run(["hyperfine", "--warmup", "1", "--runs", str(runs), "--export-json",
                            out.name, "-N", " ".join(cmd)], check=True, capture_output=True)
            result = json.loads(Path(out.name).read_text())["results"][0]
            return {"min": result["min"], "median": result["median"], "max": result["max"]}
    times = []
    subprocess.run(cmd, check=True, capture_output=True)  # warm-up
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return {"min": min(times), "median": statistics.median(times), "max": max(times)}


def peak_rss_mb(cmd: list[str]) -> float:
    """Peak resident memory of one run of ``cmd`` (its own, via wait4)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return usage.ru_maxrss / 1024


def main() -> None:
    sizes = [int(a) for a in sys.argv[1:]] or [1000, 10000]
    exe = [sys.executable, "-m", "aivpbuild"]
    help_t = time_command([*exe, "--help"])
    print(f"aivpbuild --help: median {help_t['median']*1000:.0f} ms (target ≤ 150 ms)")
    for n in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            make_project(root, n)
            manifest_mb = (root / "project.aivp.yaml").stat().st_size / 1e6
            start = time.perf_counter()
            subprocess.run([*exe, "-C", tmp, "-j", str(os.cpu_count() or 2)], check=True,
                           capture_output=True)
            first = time.perf_counter() - start
            print(f"N={n}: manifest {manifest_mb:.1f} MB; first build {first:.1f} s")
            target = TARGETS.get(n)
            for command in ("status", "build"):
                cmd = [*exe, command, "-C", tmp]
                t = time_command(cmd)
                rss = peak_rss_mb(cmd)
                goal = f" (target ≤ {target} s)" if target else ""
                print(f"  no-op {command:6s}: min {t['min']:.3f} s, median {t['median']:.3f} s, "
                      f"max {t['max']:.3f} s{goal}; peak RSS {rss:.0f} MB (target < 250 MB)")


if __name__ == "__main__":
    main()
