"""The camera-text parser and the camera path (no video involved)."""

from __future__ import annotations

import numpy as np
import pytest

from aivpbuild.media.camera import FAST, SHIFT, SLOW, ZOOM, ease, parse_camera, shake


def names(text: str) -> list[str]:
    return [m.name for m in parse_camera(text).moves]


@pytest.mark.parametrize(("text", "expected"), [
    ("push in", ["push in"]), ("Dolly-in", ["push in"]), ("zooms in", ["push in"]),
    ("pull out", ["pull out"]), ("zoom out", ["pull out"]), ("dolly back", ["pull out"]),
    ("pan left", ["pan left"]), ("trucking right", ["pan right"]), ("dolly left", ["pan left"]),
    ("camera drifts left", ["pan left"]), ("tilt up", ["tilt up"]),
    ("pedestal down", ["tilt down"]), ("crane up", ["crane up"]), ("slowly rising", ["crane up"]),
    ("crane down", ["crane down"]), ("orbit", ["orbit left"]),
    ("arc to the right", ["orbit right"]),
    ("slow push-in, pan left", ["push in", "pan left"]),
    ("tilt down then push in", ["tilt down", "push in"]),
])
def test_moves_are_recognised(text: str, expected: list[str]) -> None:
    plan = parse_camera(text)
    assert names(text) == expected and plan.notes == ()


@pytest.mark.parametrize("text", [None, "", "static", "locked-off tripod", "no camera movement",
                                  "medium shot, eye-level", "static shot", "close-up"])
def test_stills_and_framing_words_do_not_move(text: str | None) -> None:
    plan = parse_camera(text)
    assert plan.is_static and plan.notes == ()
    assert plan.at(1.0) == (0.0, 0.0, 1.0)


def test_strength_words_scale_their_own_part() -> None:
    slow, fast, normal = parse_camera("slow push in, fast pan left, pan right").moves
    assert slow.zoom == pytest.approx(SLOW * ZOOM) and fast.dx == pytest.approx(-FAST * SHIFT)
    assert normal.dx == pytest.approx(SHIFT)
    assert parse_camera("gentle handheld").handheld < parse_camera("dramatic shaky cam").handheld


def test_unknown_wording_alone_becomes_a_gentle_push_in_with_a_note() -> None:
    plan = parse_camera("wobbly zoom")
    assert names("wobbly zoom") == ["push in"] and plan.moves[0].zoom == pytest.approx(SLOW * ZOOM)
    assert plan.notes == ("camera 'wobbly zoom' not understood ('wobbly zoom'): "
                          "using a gentle push-in",)


def test_unknown_part_beside_a_known_move_is_ignored_with_a_note() -> None:
    plan = parse_camera("barrel roll, pan right")
    assert names("barrel roll, pan right") == ["pan right"]
    assert len(plan.notes) == 1 and "ignored 'barrel roll'" in plan.notes[0]


def test_path_starts_on_the_keyframe_and_is_eased() -> None:
    plan = parse_camera("push in, pan right")
    path = plan.path(seed=0, duration=2.0)
    assert path.at(0.0) == (0.0, 0.0, 1.0)
    cx, _, z = path.at(1.0)
    assert cx == pytest.approx(SHIFT) and z == pytest.approx(1 + ZOOM)
    xs = np.array([path.at(t)[0] for t in np.linspace(0, 1, 101)])
    steps = np.diff(xs)
    assert (steps >= 0).all() and steps[0] < steps[50] / 20 and steps[-1] < steps[50] / 20
    assert ease(0.5) == pytest.approx(0.5)


def test_a_path_anchored_at_the_end_lands_on_its_keyframe() -> None:
    plan = parse_camera("push in, pan left, handheld")
    start, end = plan.path(3, 4.0), plan.path(3, 4.0, anchor=1.0)
    assert end.at(1.0) == pytest.approx((0.0, 0.0, 1.0))
    # same motion, seen from the other keyframe: relative zoom and velocity match
    for t in (0.0, 0.3, 0.7):
        (ax, _, az), (bx, _, bz) = start.at(t), end.at(t)
        (ax2, _, az2), (bx2, _, bz2) = start.at(t + 0.1), end.at(t + 0.1)
        assert az2 / az == pytest.approx(bz2 / bz)
        assert (bx2 - bx) == pytest.approx((ax2 - ax) * start.at(1.0)[2])
    left, top, right, bottom, zmax = end.extent()
    assert zmax == pytest.approx(1.0, abs=0.01)  # it starts wider than the keyframe ...
    assert max(left, top, right, bottom) > 0.05  # ... so the canvas extends around it


def test_handheld_shake_is_seeded_smooth_and_measured_in_seconds() -> None:
    assert shake(1.3, 7) == shake(1.3, 7) and shake(1.3, 7) != shake(1.3, 8)
    samples = np.array([shake(t / 100, 7) for t in range(500)])
    assert np.abs(samples).max() <= 1.0 and np.abs(np.diff(samples, axis=0)).max() < 0.1
    plan = parse_camera("handheld")
    # one second into a 2 s clip and into a 10 s clip: the same wobble
    assert plan.path(7, 2.0).at(0.5) == pytest.approx(plan.path(7, 10.0).at(0.1))
