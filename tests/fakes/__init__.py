"""Fake provider servers for tests: fal.ai, Replicate and ComfyUI on 127.0.0.1.

Each is a real HTTP server in a background thread, speaking the wire protocol of
``PROVIDERS.md`` (statuses, shapes, error bodies), serving real small MP4s, keeping a ledger
of billable submissions and taking injected faults. Use them as context managers::

    from tests.fakes import FalFake, ReplicateFake, ComfyUIFake, comfyui_pool

See each module's docstring for its URLs, timing model, faults and knobs.
"""

from tests.fakes.comfyui import ComfyUIFake, comfyui_pool
from tests.fakes.fal import FalFake
from tests.fakes.replicate import ReplicateFake
from tests.fakes.server import FakeServer, Fault

__all__ = ["ComfyUIFake", "FakeServer", "FalFake", "Fault", "ReplicateFake", "comfyui_pool"]
