"""aivpbuild: make for AI video. The library API is :class:`aivpbuild.api.Project`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Project", "__version__"]

if TYPE_CHECKING:
    from aivpbuild.api import Project


def __getattr__(name: str) -> Any:
    if name == "Project":  # imported lazily so `aivpbuild --help` stays fast
        from aivpbuild.api import Project

        return Project
    raise AttributeError(name)
