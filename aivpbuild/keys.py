"""Target keys: a sha256 over canonical JSON of everything that changes a target's output.

A key's *material* is a small JSON object (kind, key-schema version, provider, endpoint,
mode, prompt, output-affecting params, input-file digests, upstream output digests, adapter
version). Comments, clip order, notes and formatting never reach it. The material of the last
build is kept with the cached output, so "why is this stale" is a field-level diff.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

#: Bump when the material's layout changes: every key changes with it.
KEY_SCHEMA = 2


def canonical_json(value: Any) -> str:
    """Deterministic JSON: sorted keys, no spaces, UTF-8 text, no NaN."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def key_of(material: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical_json(material).encode("utf-8")).hexdigest()


def _short(value: Any, limit: int = 40) -> str:
    text = value if isinstance(value, str) else canonical_json(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def explain_change(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Human reasons why ``new`` differs from ``old``, most meaningful first.

    e.g. ``["prompt", "model (local/animatic → fal-ai/veo3.1)", "params (duration 5 → 8)",
    "input image/frames/shot-01-ff.png", "upstream shot-01"]``.
    """
    reasons: list[str] = []
    if old.get("schema") != new.get("schema") or old.get("kind") != new.get("kind"):
        return ["key format changed"]
    if old.get("prompt") != new.get("prompt"):
        reasons.append("prompt")
    if (old.get("provider"), old.get("endpoint")) != (new.get("provider"), new.get("endpoint")):
        reasons.append(f"model ({old.get('endpoint')} → {new.get('endpoint')})")
    if old.get("mode") != new.get("mode"):
        reasons.append(f"mode ({old.get('mode')} → {new.get('mode')})")
    old_p, new_p = old.get("params") or {}, new.get("params") or {}
    changed = [
        f"{name} {_short(old_p.get(name))} → {_short(new_p.get(name))}"
        for name in sorted(set(old_p) | set(new_p))
        if old_p.get(name) != new_p.get(name)
    ]
    if changed:
        reasons.append(f"params ({', '.join(changed)})")
    old_in, new_in = old.get("inputs") or {}, new.get("inputs") or {}
    for role in sorted(set(old_in) | set(new_in)):
        if old_in.get(role) != new_in.get(role):
            path = (new_in.get(role) or old_in.get(role) or {}).get("path", role)
            reasons.append(f"input {path}")
    old_up, new_up = old.get("upstream") or {}, new.get("upstream") or {}
    for role in sorted(set(old_up) | set(new_up)):
        if old_up.get(role) != new_up.get(role):
            target = (new_up.get(role) or old_up.get(role) or {}).get("target", role)
            reasons.append(f"upstream {target.split(':', 1)[-1].split('@')[0]}")
    if old.get("adapter") != new.get("adapter") and old.get("provider") == new.get("provider"):
        reasons.append(f"adapter version ({old.get('adapter')} → {new.get('adapter')})")
    return reasons or ["key changed"]
