"""Camera wording → a smooth virtual-camera path over a keyframe.

``parse_camera("slow push-in, pan left")`` understands push/dolly/zoom in, pull/zoom/dolly
out, pan, truck and dolly left/right, tilt, pedestal and boom up/down, crane up/down,
orbit/arc left/right, handheld shake and static, with strength words (slow/gentle/subtle,
fast/quick/dramatic). Parts are separated by commas, "and", "then", "while" or "with"; each
strength word applies to its own part. Wording it cannot read is reported in
:attr:`CameraPlan.notes`, and when nothing at all is understood the plan is a gentle push-in.

A :class:`CameraPath` gives, for t in [0, 1], the view's centre and zoom in keyframe units; the
view is exactly the keyframe at its anchor time (the start, or the end for a last keyframe).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

SLOW, NORMAL, FAST = 0.55, 1.0, 1.6
_STRENGTH = [(re.compile(r"\b(slow(ly)?|gentle|gently|subtle|subtly|slight(ly)?|soft(ly)?)\b"), SLOW),
             (re.compile(r"\b(fast|quick(ly)?|rapid(ly)?|dramatic(ally)?|whip|sudden(ly)?)\b"), FAST)]
ZOOM = 0.22          # push-in: zoom 1 → 1.22 at normal strength
SHIFT = 0.10         # pan: the view centre moves 10% of the frame width at normal strength
SHAKE = 0.006        # handheld: ~0.6% of the frame
#: Hand-held wobble frequencies (Hz) and weights: a slow sway with a little tremor on top.
_SHAKE_WAVES = ((0.7, 0.6), (1.9, 0.3), (3.1, 0.1))
_SHAKE_WAVES_Y = ((0.5, 0.6), (1.3, 0.3), (2.7, 0.1))


@dataclass(frozen=True)
class Move:
    """One elementary move: zoom change and centre travel (dx, dy in frame fractions)."""

    name: str
    zoom: float = 0.0
    dx: float = 0.0
    dy: float = 0.0


@dataclass(frozen=True)
class CameraPlan:
    """What the camera does over a clip: eased moves, plus an optional hand-held wobble."""

    moves: tuple[Move, ...] = ()
    handheld: float = 0.0
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def is_static(self) -> bool:
        return not self.moves and not self.handheld

    def path(self, seed: int = 0, duration: float = 5.0, anchor: float = 0.0) -> CameraPath:
        """This plan over a clip of ``duration`` seconds, the view equal to the keyframe at
        time ``anchor`` (0: the first frame; 1: the last frame, for an end keyframe)."""
        return CameraPath(self, seed, duration, anchor)

    def at(self, t: float, seed: int = 0, duration: float = 5.0) -> tuple[float, float, float]:
        """(view centre x, view centre y, zoom) at time t in [0, 1], in keyframe units: the
        keyframe spans [-0.5, 0.5] on both axes and at t = 0 the view is exactly the keyframe
        (centre 0, zoom 1), as an image-to-video model's first frame is its input image."""
        e = ease(t)
        zoom, cx, cy = 1.0, 0.0, 0.0
        for m in self.moves:
            zoom = zoom * (1 + m.zoom * e) if m.zoom >= 0 else zoom / (1 - m.zoom * e)
            cx += m.dx * e
            cy += m.dy * e
        if self.handheld:
            (hx, hy), (x0, y0) = shake(t * duration, seed), shake(0.0, seed)
            cx += self.handheld * (hx - x0)
            cy += self.handheld * (hy - y0)
        return cx, cy, zoom

    def extent(self, seed: int = 0, duration: float = 5.0,
               samples: int = 64) -> tuple[float, float, float, float, float]:
        """See :meth:`CameraPath.extent` (anchored at the first frame)."""
        return self.path(seed, duration).extent(samples)


@dataclass(frozen=True)
class CameraPath:
    """A plan laid over one clip: its seed (for the wobble), length and anchor time."""

    plan: CameraPlan
    seed: int = 0
    duration: float = 5.0
    anchor: float = 0.0

    def at(self, t: float) -> tuple[float, float, float]:
        """(centre x, centre y, zoom) at t in [0, 1]; (0, 0, 1) at the anchor time."""
        cx, cy, zoom = self.plan.at(t, self.seed, self.duration)
        if not self.anchor:
            return cx, cy, zoom
        # Map the view at the anchor onto the whole keyframe; every other view moves with it.
        ax, ay, az = self.plan.at(self.anchor, self.seed, self.duration)
        return (cx - ax) * az, (cy - ay) * az, zoom / az

    def extent(self, samples: int = 64) -> tuple[float, float, float, float, float]:
        """How far the view ever reaches beyond the keyframe (left, top, right, bottom, in
        keyframe fractions) and the largest zoom, so the canvas can be prepared once."""
        left = top = right = bottom = 0.0
        zmax = 1.0
        steps = max(samples, math.ceil(self.duration * 24)) if self.plan.handheld else samples
        for i in range(steps + 1):
            cx, cy, z = self.at(i / steps)
            half = 0.5 / z
            left, right = max(left, -(cx - half) - 0.5), max(right, cx + half - 0.5)
            top, bottom = max(top, -(cy - half) - 0.5), max(bottom, cy + half - 0.5)
            zmax = max(zmax, z)
        return left, top, right, bottom, zmax


def ease(t: float) -> float:
    """Smooth ease-in-out (zero velocity and acceleration at both ends)."""
    t = min(max(t, 0.0), 1.0)
    return t * t * t * (t * (6 * t - 15) + 10)


def shake(seconds: float, seed: int) -> tuple[float, float]:
    """Deterministic, smooth hand-held wobble in [-1, 1] from a few seeded sine waves."""
    phases = [((seed * 2654435761 + k * 40503) % 6283) / 1000 for k in range(6)]
    x = sum(w * math.sin(2 * math.pi * f * seconds + p)
            for (f, w), p in zip(_SHAKE_WAVES, phases[:3], strict=True))
    y = sum(w * math.sin(2 * math.pi * f * seconds + p)
            for (f, w), p in zip(_SHAKE_WAVES_Y, phases[3:], strict=True))
    return x, y


_VERB = r"(s|es|ing|ed)?"
_MOVES: list[tuple[re.Pattern[str], str, float, float, float]] = [
    # pattern, name, zoom, dx, dy   (dx > 0: the view travels right, so content drifts left)
    (re.compile(rf"\b(push{_VERB}[- ]?in|dolly{_VERB}[- ]?in|zoom{_VERB}[- ]?in|move{_VERB}[- ]?in|track{_VERB}[- ]?in|creep{_VERB}[- ]?in)\b"), "push in", ZOOM, 0, 0),
    (re.compile(rf"\b(pull{_VERB}[- ]?(out|back)|dolly{_VERB}[- ]?(out|back)|zoom{_VERB}[- ]?out|move{_VERB}[- ]?(out|back)|track{_VERB}[- ]?(out|back))\b"), "pull out", -ZOOM, 0, 0),
    (re.compile(rf"\b(pan{_VERB}|panning|truck{_VERB}|track{_VERB}|dolly{_VERB}|slide{_VERB}|sliding|drift{_VERB})[- ]?(to the )?left\b"), "pan left", 0, -SHIFT, 0),
    (re.compile(rf"\b(pan{_VERB}|panning|truck{_VERB}|track{_VERB}|dolly{_VERB}|slide{_VERB}|sliding|drift{_VERB})[- ]?(to the )?right\b"), "pan right", 0, SHIFT, 0),
    (re.compile(rf"\b(tilt{_VERB}|pedestal{_VERB}|boom{_VERB})[- ]?up(ward)?\b"), "tilt up", 0, 0, -SHIFT),
    (re.compile(rf"\b(tilt{_VERB}|pedestal{_VERB}|boom{_VERB})[- ]?down(ward)?\b"), "tilt down", 0, 0, SHIFT),
    (re.compile(rf"\bcrane{_VERB}[- ]?(shot[- ]?)?up(ward)?\b|\bris(e|es|ing)\b"), "crane up", -ZOOM / 3, 0, -SHIFT),
    (re.compile(rf"\bcrane{_VERB}[- ]?(shot[- ]?)?down(ward)?\b|\bdescend{_VERB}\b"), "crane down", ZOOM / 3, 0, SHIFT),
    (re.compile(r"\b(orbit(s|ing)?|arc(s|ing)?)([- ]?(to the )?left)?\b(?!.*right)"), "orbit left", ZOOM / 4, -SHIFT, 0),
    (re.compile(r"\b(orbit(s|ing)?|arc(s|ing)?)[- ]?(to the )?right\b"), "orbit right", ZOOM / 4, SHIFT, 0),
]
_HANDHELD = re.compile(r"\b(hand[- ]?held|shak(e|y|ing)|documentary|jitter(y)?)\b")
_STATIC = re.compile(r"\b(static|locked[- ]?(off|down)?|fixed|still|tripod|no (camera )?(move(ment)?|motion))\b")
_SPLIT = re.compile(r"[,;+/]|\band\b|\bthen\b|\bwhile\b|\bwith\b")
#: Words that describe framing rather than motion ("medium shot, eye-level"): not moves ...
_FRAMING = re.compile(r"\b(shot|close|close-up|closeup|wide|medium|cu|ms|ws|ecu|angle|level|low|high|"
                      r"over[- ]the[- ]shoulder|pov|frame|framing|lens|mm|focus|eye|profile|"
                      r"establishing|centered|centred|symmetrical)\b")
#: ... unless the part also has a word of motion ("tracking shot", "camera drifts"): then it is
#: a move this parser does not know.
_MOTION = re.compile(r"\b(mov|drift|track|dolly|pan|tilt|zoom|push|pull|crane|orbit|arc|circl|rotat|"
                     r"spin|roll|follow|sweep|glid|fly|flies|swoop|whip|travel|rack|truck|boom|swirl)")


def parse_camera(text: str | None) -> CameraPlan:
    """Understand a camera description; unknown wording is noted, and falls back to a gentle
    push-in when no part of the description could be read."""
    if not text or not text.strip():
        return CameraPlan()
    moves: list[Move] = []
    handheld = 0.0
    unknown: list[str] = []
    for part in _SPLIT.split(text.lower()):
        part = part.strip()
        if not part:
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
        rest = _STATIC.sub(" ", part)  # "no camera movement" is not a move
        if matched or (rest != part and not _MOTION.search(rest)):
            continue
        if _MOTION.search(rest) or not _FRAMING.search(rest):
            unknown.append(part)
    if not unknown:
        return CameraPlan(tuple(moves), handheld)
    quoted = ", ".join(repr(p) for p in unknown)
    if not moves and not handheld:
        return CameraPlan((Move("push in", ZOOM * SLOW),), 0.0, (
            f"camera {text.strip()!r} not understood ({quoted}): using a gentle push-in",))
    return CameraPlan(tuple(moves), handheld, (
        f"camera {text.strip()!r}: ignored {quoted} (not a move the local renderer knows)",))
