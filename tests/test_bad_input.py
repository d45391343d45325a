"""Malformed manifests: exit code 2, a message naming the place, no traceback, nothing written."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.helpers import TINY, run_cli, tree, write_project

HEAD = "version: 1\nname: t\ndefaults: {provider: local, resolution: 64x36, duration: 1, fps: 8}\n"

# (case id, manifest text, extra files, expected fragments of the error message)
CASES: list[tuple[str, str, dict[str, object], list[str]]] = [
    ("yaml-syntax", HEAD + "clips:\n  a: {prompt: [unclosed\n", {}, ["YAML syntax error", "project.aivp.yaml:"]),
    ("yaml-tab-indent", HEAD + "clips:\n\ta: {prompt: x}\n", {}, ["YAML syntax error"]),
    ("not-a-mapping", "- just\n- a list\n", {}, ["must be a mapping"]),
    ("unknown-top-key", HEAD + "clip:\n  a: {prompt: x}\nclips: {a: {prompt: x}}\n", {},
     ["unknown key 'clip'", "did you mean 'clips'", ":4:1"]),
    ("unknown-clip-key", HEAD + "clips:\n  a:\n    promt: hello\n", {},
     ["clips.a.promt", "did you mean 'prompt'", ":6:5"]),
    ("unknown-defaults-key", "version: 1\nname: t\ndefaults: {resolutoin: 720p}\nclips: {a: {prompt: x}}\n",
     {}, ["defaults.resolutoin", "did you mean 'resolution'"]),
    ("bad-version", "version: 2\nname: t\nclips: {a: {prompt: x}}\n", {}, ["version", ":1:"]),
    ("missing-name", "version: 1\nclips: {a: {prompt: x}}\n", {}, ["required key 'name'"]),
    ("missing-clips", "version: 1\nname: t\n", {}, ["required key 'clips'"]),
    ("empty-clips", "version: 1\nname: t\nclips: {}\n", {}, ["no clips"]),
    ("duration-word", HEAD + "clips:\n  a: {prompt: x, duration: five}\n", {}, ["clips.a.duration", "not a duration"]),
    ("duration-negative", HEAD + "clips:\n  a: {prompt: x, duration: -3}\n", {}, ["clips.a.duration", "out of range"]),
    ("duration-bool", HEAD + "clips:\n  a: {prompt: x, duration: true}\n", {}, ["clips.a.duration"]),
    ("resolution-junk", HEAD + "clips:\n  a: {prompt: x, resolution: huge}\n", {}, ["not a resolution"]),
    ("resolution-odd", HEAD + "clips:\n  a: {prompt: x, resolution: 1281x720}\n", {}, ["odd side", "1282x720"]),
    ("aspect-unquoted", HEAD + "clips:\n  a: {prompt: x, aspect_ratio: 16:9}\n", {}, ["quote it"]),
    ("aspect-junk", HEAD + "clips:\n  a: {prompt: x, aspect_ratio: 16x9}\n", {}, ["not an aspect ratio"]),
    ("fps-junk", HEAD + "clips:\n  a: {prompt: x, fps: fast}\n", {}, ["clips.a.fps", "not a frame rate"]),
    ("provider-unknown", HEAD + "clips:\n  a: {prompt: x, provider: runway}\n", {}, ["clips.a.provider", "'runway'"]),
    ("mode-unknown", HEAD + "clips:\n  a: {prompt: x, mode: v2v}\n", {}, ["clips.a.mode"]),
    ("seed-word", HEAD + "clips:\n  a: {prompt: x, seed: lucky}\n", {}, ["clips.a.seed"]),
    ("params-not-mapping", HEAD + "clips:\n  a: {prompt: x, params: [1, 2]}\n", {}, ["clips.a.params"]),
    ("clip-id-space", HEAD + "clips:\n  shot 01: {prompt: x}\n", {}, ["'shot 01' is not valid"]),
    ("duplicate-clip", HEAD + "clips:\n  a: {prompt: x}\n  a: {prompt: y}\n", {}, ["duplicate key 'a'", ":6:3"]),
    ("cycle", HEAD + "clips:\n  shot-01: {prompt: x, image: {clip: shot-02, frame: last}}\n"
     "  shot-02: {prompt: y, image: {clip: shot-01, frame: last}}\n", {}, ["cycle", "shot-01 --> shot-02"]),
    ("self-cycle", HEAD + "clips:\n  a: {prompt: x, image: {clip: a, frame: first}}\n", {}, ["cycle", "a --> a"]),
    ("frame-ref-unknown-clip", HEAD + "clips:\n  shot-01: {prompt: x}\n  shot-02: {prompt: y, image: {clip: shot-1, frame: last}}\n",
     {}, ["no clip named 'shot-1'", "did you mean 'shot-01'"]),
    ("frame-ref-bad-frame", HEAD + "clips:\n  a: {prompt: x}\n  b: {prompt: y, image: {clip: a, frame: middle}}\n",
     {}, ["clips.b.image"]),
    ("i2v-missing-keyframe", HEAD + "clips:\n  a: {prompt: x, mode: i2v, image: image/frames/nope.png}\n", {},
     ["clips.a.image", "does not exist", "mode: i2v"]),
    ("i2v-without-image", HEAD + "clips:\n  a: {prompt: x, mode: i2v}\n", {}, ["clips.a"]),
    ("absolute-path", HEAD + "clips:\n  a: {prompt: x, image: /etc/hostname}\n", {}, ["clips.a.image", "absolute"]),
    ("dotdot-escape", HEAD + "clips:\n  a: {prompt: x, image: image/../../secret.png}\n", {}, ["clips.a.image", "'..'"]),
    ("refs-missing", HEAD + "clips:\n  a: {prompt: x, refs: [image/characters/nobody.png]}\n", {},
     ["clips.a.refs", "does not exist"]),
    ("template-undefined", HEAD + "clips:\n  a: {prompt: 'Hello {{ hero }}'}\n", {}, ["clips.a.prompt", "'hero' is undefined"]),
    ("template-sandbox", HEAD + "clips:\n  a: {prompt: \"{{ ''.__class__ }}\"}\n", {}, ["clips.a.prompt", "unsafe"]),
    ("template-sandbox-mro", HEAD + "clips:\n  a: {prompt: \"{{ ''.__class__.__mro__[1].__subclasses__() }}\"}\n",
     {}, ["clips.a.prompt", "unsafe"]),
    ("template-syntax", HEAD + "clips:\n  a: {prompt: 'Hello {{ hero'}\n", {}, ["clips.a.prompt", "syntax error"]),
    ("edit-outside-video", HEAD + "clips:\n  a: {prompt: x}\nedit: {output: final.mp4}\n", {}, ["edit.output", "under video/"]),
    ("not-utf8", "", {"project.aivp.yaml": b"version: 1\nname: \xff\xfe\n"}, ["not UTF-8"]),
]


@pytest.mark.parametrize(("text", "files", "fragments"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_manifest_exits_2_with_a_located_message(
    tmp_path: Path, text: str, files: dict[str, object], fragments: list[str]
) -> None:
    root = write_project(tmp_path / "p", text, files)
    before = tree(root)
    result = run_cli("status", "-C", str(root))
    assert result.code == 2, result
    assert "Traceback" not in result.err
    for fragment in fragments:
        assert fragment in result.err, f"{fragment!r} not in {result.err!r}"
    assert tree(root) == before, "a failed load must not write anything"
    # the build command refuses the same way, still writing nothing
    assert run_cli("-C", str(root)).code == 2
    assert tree(root) == before


def test_symlink_escape_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside.png"
    from tests.helpers import keyframe

    keyframe(outside)
    root = write_project(tmp_path / "p", HEAD + "clips:\n  a: {prompt: x, image: image/frames/a.png}\n")
    (root / "image/frames").mkdir(parents=True)
    os.symlink(outside, root / "image/frames/a.png")
    result = run_cli("status", "-C", str(root))
    assert result.code == 2
    assert "outside the project" in result.err and "clips.a.image" in result.err


def test_unknown_profile_is_a_usage_error(tmp_path: Path) -> None:
    root = write_project(tmp_path / "p", {"version": 1, "name": "t", "defaults": TINY,
                                          "profiles": {"preview": {"resolution": "64x36"}},
                                          "clips": {"a": {"prompt": "x"}}})
    result = run_cli("status", "-C", str(root), "--profile", "previw")
    assert result.code == 2
    assert "unknown profile 'previw'" in result.err and "preview" in result.err


def test_verbose_shows_the_traceback(tmp_path: Path) -> None:
    root = write_project(tmp_path / "p", HEAD + "clips:\n  a: {prompt: x, duration: five}\n")
    result = run_cli("status", "-C", str(root), "-v")
    assert result.code == 2
    assert "Traceback" in result.err
