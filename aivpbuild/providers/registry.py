"""Provider registry: names → adapter classes, loaded lazily with clear errors."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from aivpbuild.errors import ConfigError
from aivpbuild.providers.base import Provider

#: name -> (module, class). Remote adapters import httpx: load them only when used.
PROVIDERS: dict[str, tuple[str, str]] = {
    "local": ("aivpbuild.providers.local", "LocalProvider"),
    "fal": ("aivpbuild.providers.fal", "FalProvider"),
    "replicate": ("aivpbuild.providers.replicate", "ReplicateProvider"),
    "comfyui": ("aivpbuild.providers.comfyui", "ComfyUIProvider"),
}


def provider_class(name: str) -> type[Provider]:
    if name not in PROVIDERS:
        raise ConfigError(f"provider {name!r} does not exist (choose from {', '.join(PROVIDERS)})")
    module_name, class_name = PROVIDERS[name]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(
            f"provider {name!r} failed to import: {exc}",
            hint="reinstall aivpbuild (`pip install -e .`) so its dependencies are present",
        ) from exc
    cls: type[Provider] = getattr(module, class_name)
    return cls


#: Output-affecting version of each remote adapter's request format: part of every key it
#: makes, kept here so planning never imports httpx (a test checks the classes agree).
REQUEST_FORMAT_VERSIONS = {"fal": "1", "replicate": "1", "comfyui": "1"}


def adapter_version(name: str) -> str:
    """The output-affecting version of a provider's adapter (part of every key it makes)."""
    if name == "local":
        from aivpbuild.media import RENDERER_VERSION

        return f"local-{RENDERER_VERSION}"
    return f"{name}-{REQUEST_FORMAT_VERSIONS[name]}"


def create_provider(name: str, *, root: Path, settings: Any = None, jobs: int = 2) -> Provider:
    """An adapter instance for one build."""
    cls = provider_class(name)
    if name == "local":
        return cls(scratch=root / ".aivp" / "tmp", jobs=jobs)  # type: ignore[call-arg]
    return cls.from_settings(settings, root)  # type: ignore[attr-defined]
