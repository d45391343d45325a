"""Fixtures for the fakes' own tests: each fake started fresh, and a plain httpx client."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import TypeVar

import httpx
import pytest

from tests.fakes.comfyui import ComfyUIFake
from tests.fakes.fal import FalFake
from tests.fakes.replicate import ReplicateFake

FAL_KEY = "fal-fake-test-key"
REPLICATE_TOKEN = "r8_fake_test_token"

T = TypeVar("T")


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5) as http:
        yield http


@pytest.fixture
def fal() -> Iterator[FalFake]:
    with FalFake(key=FAL_KEY, queue_seconds=0.05, run_seconds=0.05) as fake:
        yield fake
    assert fake.errors == []


@pytest.fixture
def replicate() -> Iterator[ReplicateFake]:
    with ReplicateFake(token=REPLICATE_TOKEN, start_seconds=0.05, run_seconds=0.1) as fake:
        yield fake
    assert fake.errors == []


@pytest.fixture
def comfy() -> Iterator[ComfyUIFake]:
    with ComfyUIFake(run_seconds=0.1) as fake:
        yield fake
    assert fake.errors == []


def wait_for(fetch: Callable[[], T], done: Callable[[T], bool], timeout: float = 5.0) -> list[T]:
    """Call ``fetch`` until ``done`` holds for its answer; every answer seen, in order."""
    seen: list[T] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen.append(fetch())
        if done(seen[-1]):
            return seen
        time.sleep(0.01)
    raise AssertionError(f"not done after {timeout} s; last answer: {seen[-1] if seen else None!r}")
