"""Remote-provider throughput: N clips on the fake fal.ai with 2 s of queue + inference latency
and a provider concurrency of 32.

    python bench/remote.py 200 50

For each N prints the wall time against the ideal ceil(N/32) x 2 s, aivpbuild's own CPU time
per job (user + system of the build process), and its peak memory (which should not grow with
N: downloads are streamed to disk, never held in memory).
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fakes.fal import FalFake

LATENCY = 2.0
CONCURRENCY = 32


def run(n: int) -> None:
    with FalFake(key="bench-key", queue_seconds=LATENCY / 2, run_seconds=LATENCY / 2) as fal, \
            tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        manifest = {
            "version": 1, "name": "bench",
            "defaults": {"provider": "fal", "model": "fal-ai/bytedance/seedance/v1.5/pro",
                         "resolution": "480p", "duration": 4, "audio": False},
            "providers": {"fal": {"concurrency": CONCURRENCY, "poll_interval": 2.0}},
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
        print(f"user {usage.ru_utime:.2f} s, system {usage.ru_stime:.2f} s")
        print(f"N={n}: wall {wall:.1f} s vs ideal {ideal:.0f} s ({(wall / ideal - 1) * 100:+.0f}%, target ≤ +15%); "
              f"CPU {cpu:.2f} s = {cpu / n * 1000:.1f} ms per job (target < 3 ms); "
              f"peak RSS {usage.ru_maxrss / 1024:.0f} MB; submissions {len(fal.ledger)}")


def main() -> None:
    for n in [int(a) for a in sys.argv[1:]] or [200, 50]:
        run(n)


if __name__ == "__main__":
    main()
