"""Camera wording → a smooth virtual-camera path over a keyframe.

``parse_camera("slow push-in, pan left")`` understands push/dolly/zoom in, pull/zoom/dolly
out, pan and truck left/right, tilt and pedestal up/down, crane up/down, orbit/arc left/right,
handheld shake and static, with strength words (slow/gentle/subtle, fast/quick/dramatic).
The path gives, for t in [0, 1], the view's centre and zoom; it always starts on the keyframe.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

SLOW, NORMAL, FAST = 0.55, 1.0, 1.6
_STRENGTH = [(re.compile(r"\b(slow(ly)?|gentle|gently|subtle|slight(ly)?|soft)\b"), SLOW),
             (re.compile(r"\b(fast|quick(ly)?|rapid|dramatic|whip|sudden)\b"), FAST)]
ZOOM = 0.22          # push-in: zoom 1 → 1.22 at normal strength
SHIFT = 0.10         # pan: the view centre moves 10% of the frame width at normal strength
SHAKE = 0.006        # handheld: ~0.6% of the frame


@dataclass(frozen=True)
class Move:
    """One elementary move: zoom change and centre travel (dx, dy in frame fractions)."""

    name: str
    zoom: float = 0.0
    dx: float = 0.0
    dy: float = 0.0


@dataclass(frozen=True)
class CameraPlan:
    moves: tuple[Move, ...] = ()
    handheld: float = 0.0
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def is_static(self) -> bool:
        return not self.moves and not self.handheld

    def at(self, t: float, seed: int = 0) -> tuple[float, float, float]:
        """(view centre x, view centre y, zoom) at time t in [0, 1], in keyframe units.

        The keyframe spans [-0.5, 0.5] on both axes; at t = 0 the view is exactly the keyframe
        (centre 0, zoom 1), as an image-to-video model's first frame is its input image.
        """
        e = ease(t)
        zoom, cx, cy = 1.0, 0.0, 0.0
        for m in self.moves:
            zoom = zoom * (1 + m.zoom * e) if m.zoom >= 0 else zoom / (1 - m.zoom * e)
            cx += m.dx * e
            cy += m.dy * e
        if self.handheld:
            (hx, hy), (x0, y0) = shake(t, seed), shake(0.0, seed)
            cx += self.handheld * (hx - x0)
            cy += self.handheld * (hy - y0)
        return cx, cy, zoom

    def extent(self, seed: int = 0, samples: int = 64) -> tuple[float, float, float, float, float]:
        """How far the view ever reaches beyond the keyframe (left, top, right, bottom, in
        keyframe fractions) and the largest zoom, so the canvas can be prepared once."""
        left = top = right = bottom = 0.0
        zmax = 1.0
        for i in range(samples + 1):
            cx, cy, z = self.at(i / samples, seed)
            half = 0.5 / z
            left, right = max(left, -(cx - half) - 0.5), max(right, cx + half - 0.5)
            top, bottom = max(top, -(cy - half) - 0.5), max(bottom, cy + half - 0.5)
            zmax = max(zmax, z)
        return left, top, right, bottom, zmax


def ease(t: float) -> float:
    """Smooth ease-in-out (zero velocity at both ends, continuous acceleration)."""
    t = min(max(t, 0.0), 1.0)
    return t * t * t * (t * (6 * t - 15) + 10)


def shake(t: float, seed: int) -> tuple[float, float]:
    """Deterministic, smooth hand-held wobble in [-1, 1] from a few seeded sine waves."""
    phases = [((seed * 2654435761 + k * 40503) % 6283) / 1000 for k in range(6)]
    x = (math.sin(2 * math.pi * 0.7 * t * 5 + phases[0]) * 0.6
         + math.sin(2 * math.pi * 1.9 * t * 5 + phases[1]) * 0.3
         + math.sin(2 * math.pi * 3.1 * t * 5 + phases[2]) * 0.1)
    y = (math.sin(2 * math.pi * 0.5 * t * 5 + phases[3]) * 0.6
         + math.sin(2 * math.pi * 1.3 * t * 5 + phases[4]) * 0.3
         + math.sin(2 * math.pi * 2.7 * t * 5 + phases[5]) * 0.1)
    return x, y


_MOVES: list[tuple[re.Pattern[str], str, float, float, float]] = [
    # pattern, name, zoom, dx, dy   (dx > 0: the view travels right, so content drifts left)
    (re.compile(r"\b(push(es|ing)?[- ]?in|dolly[- ]?in|zoom(s|ing)?[- ]?in|move[- ]?in|track(ing)?[- ]?in)\b"), "push in", ZOOM, 0, 0),
    (re.compile(r"\b(pull(s|ing)?[- ]?(out|back)|dolly[- ]?(out|back)|zoom(s|ing)?[- ]?out|move[- ]?out)\b"), "pull out", -ZOOM, 0, 0),
    (re.compile(r"\b(pan(s|ning)?|truck(s|ing)?|track(s|ing)?)[- ]?left\b"), "pan left", 0, -SHIFT, 0),
    (re.compile(r"\b(pan(s|ning)?|truck(s|ing)?|track(s|ing)?)[- ]?right\b"), "pan right", 0, SHIFT, 0),
    (re.compile(r"\b(tilt(s|ing)?|pedestal(s|ing)?|boom(s|ing)?)[- ]?up\b"), "tilt up", 0, 0, -SHIFT),
    (re.compile(r"\b(tilt(s|ing)?|pedestal(s|ing)?|boom(s|ing)?)[- ]?down\b"), "tilt down", 0, 0, SHIFT),
    (re.compile(r"\bcrane[- ]?(shot[- ]?)?up\b|\brising\b"), "crane up", -ZOOM / 3, 0, -SHIFT),
    (re.compile(r"\bcrane[- ]?(shot[- ]?)?down\b|\bdescend"), "crane down", ZOOM / 3, 0, SHIFT),
    (re.compile(r"\b(orbit(s|ing)?|arc(s|ing)?)([- ]?(to the )?left)?\b(?!.*right)"), "orbit left", ZOOM / 4, -SHIFT, 0),
    (re.compile(r"\b(orbit(s|ing)?|arc(s|ing)?)[- ]?(to the )?right\b"), "orbit right", ZOOM / 4, SHIFT, 0),
]
_HANDHELD = re.compile(r"\b(hand[- ]?held|shak(e|y|ing)|documentary|jitter)\b")
_STATIC = re.compile(r"\b(static|locked[- ]?(off|down)?|fixed|still|tripod|no (camera )?movement)\b")


def parse_camera(text: str | None) -> CameraPlan:
    """Understand a camera description; unknown wording falls back to a gentle push-in."""
    if not text or not text.strip():
        return CameraPlan()
    moves: list[Move] = []
    handheld = 0.0
    for part in re.split(r"[,;+]|\band\b|\bthen\b|\bwhile\b|\bwith\b", text.lower()):
        if not part.strip():
            continue
        strength = NORMAL
        for pattern, value in _STRENGTH:
            if pattern.search(part):
                strength = value
        matched = False
        for pattern, name, zoom, dx, dy in _MOVES:
            if pattern.search(part):
                moves.append(Move(name, zoom * strength, dx * strength, dy * strength))
                matched = True
                break
        if _HANDHELD.search(part):
            handheld = SHAKE * strength
            matched = True
        if not matched and _STATIC.search(part):
            matched = True
        if not matched and _looks_like_a_move(part):
            moves.append(Move("push in", ZOOM * SLOW))
            return CameraPlan(tuple(moves), handheld, (
                f"camera {text.strip()!r}: could not understand {part.strip()!r}; "
                "using a gentle push-in",))
    return CameraPlan(tuple(moves), handheld)


def _looks_like_a_move(part: str) -> bool:
    """Framing words (close-up, eye-level) are not moves; anything else unknown is."""
    framing = re.compile(r"\b(shot|close|wide|medium|cu|ms|ws|ecu|angle|level|low|high|"
                         r"over[- ]the[- ]shoulder|pov|frame|framing|lens|mm|focus|camera)\b")
    return not framing.search(part)
