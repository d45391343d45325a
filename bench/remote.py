"""Remote-provider throughput: N clips on the fake fal.ai with 2 s of queue + inference latency
and a provider concurrency of 32.

    python bench/remote.py 200 50                  # the HTTP engine aivpbuild picks (auto)
    python bench/remote.py --transport httpx 200 50
    python bench/remote.py --distinct 200 50       # every output different, as real ones are

For each N prints the wall time against the ideal ceil(N/32) x 2 s, aivpbuild's own CPU time
(user + system of the build process, startup included) per job, and its peak memory (which
should not grow with N: downloads are streamed to disk, never held in memory). With two or
more N it also prints the marginal CPU per job, (CPU(N1) - CPU(N2)) / (N1 - N2), which leaves
out the fixed cost of starting Python and loading the project. By default every job gets the
same output file, so the review page's thumbnails are made once; ``--distinct`` gives each
job its own (as real providers do), which adds each clip's thumbnails (a background thread).
"""

from __future__ import annotations

import argparse
import math
import os
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fakes.fal import FalFake
from tests.fakes.media import video_for

LATENCY = 2.0
CONCURRENCY = 32


def distinct(video: bytes) -> Callable[[dict[str, Any]], bytes]:
    """Outputs that differ per job as real ones do (a 'free' box naming the prompt), so every
    clip is hashed, cached and thumbnailed on its own."""
    def output(payload: dict[str, Any]) -> bytes:
        tag = str(payload.get("prompt", "")).encode()
        return video + struct.pack(">I4s", 8 + len(tag), b"free") + tag
    return output


def run(n: int, transport: str, different: bool) -> float:
    """Build n clips; print the figures; return the CPU seconds."""
    # The fake encodes an output on first use (~0.3 s of x264); a real provider has it ready
    # when the job completes, so it is made before the clock starts.
    video = video_for({"resolution": "480p", "aspect_ratio": "16:9", "duration": "4"})
    with FalFake(key="bench-key", queue_seconds=LATENCY / 2, run_seconds=LATENCY / 2) as fal, \
            tempfile.TemporaryDirectory() as tmp:
        if different:
            fal.output_override = distinct(video)
        root = Path(tmp)
        manifest = {
            "version": 1, "name": "bench",
            "defaults": {"provider": "fal", "model": "fal-ai/bytedance/seedance/v1.5/pro",
                         "resolution": "480p", "duration": 4, "audio": False},
            "providers": {"fal": {"concurrency": CONCURRENCY, "poll_interval": 2.0,
                                  "http_transport": transport}},
            "clips": {f"s{i:04d}": {"prompt": f"shot {i}"} for i in range(n)},
        }
        (root / "project.aivp.yaml").write_text(yaml.safe_dump(manifest))
        env = {**os.environ, "FAL_KEY": "bench-key", "AIVP_FAL_QUEUE_URL": fal.queue_url,
               "AIVP_FAL_REST_URL": fal.rest_url, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
        start = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "aivpbuild", "-C", tmp], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"build failed: {proc.stderr.read().decode() if proc.stderr else ''}")
        ideal = math.ceil(n / CONCURRENCY) * LATENCY
        cpu = usage.ru_utime + usage.ru_stime
        label = f"{transport}, distinct outputs" if different else transport
        print(f"N={n} ({label}): wall {wall:.1f} s vs ideal {ideal:.0f} s "
              f"({(wall / ideal - 1) * 100:+.0f}%, target ≤ +15%); CPU {cpu:.2f} s "
              f"(user {usage.ru_utime:.2f}, system {usage.ru_stime:.2f}) = {cpu / n * 1000:.1f} ms "
              f"per job; peak RSS {usage.ru_maxrss / 1024:.0f} MB; submissions {len(fal.ledger)}")
        return cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sizes", nargs="*", type=int, default=[200, 50])
    parser.add_argument("--transport", choices=["auto", "aiohttp", "httpx"], default="auto")
    parser.add_argument("--distinct", action="store_true",
                        help="a different output per job (else one shared file: thumbnailed once)")
    args = parser.parse_args()
    cpu = {n: run(n, args.transport, args.distinct) for n in args.sizes}
    sizes = sorted(cpu)
    if len(sizes) >= 2 and sizes[-1] != sizes[0]:
        marginal = (cpu[sizes[-1]] - cpu[sizes[0]]) / (sizes[-1] - sizes[0])
        print(f"marginal CPU per job: {marginal * 1000:.1f} ms (target < 3 ms)")


if __name__ == "__main__":
    main()
