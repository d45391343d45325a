"""Re-compiling keeps every hand edit and comment, applies every storyboard change and
reports the conflicts; compiling twice changes nothing."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from aivpbuild.compile import compile_project
from aivpbuild.errors import ConfigError, ManifestError
from aivpbuild.manifest import parse_manifest
from tests.storyboard.helpers import SHOTS, layout1, layout2, write


def shots(numbers: list[int], **changes: dict[str, str]) -> dict[str, str | bytes]:
    """Shot files ``shot-NN.md``, alternating layouts; ``changes`` override values per id."""
    files: dict[str, str | bytes] = {}
    for n in numbers:
        values: dict[str, Any] = {"prompt": f"Shot {n} happens.", "duration": "4s",
                  "camera": "pan left" if n % 2 else "slow push-in"}
        values.update(changes.get(f"s{n}", {}))
        make = layout1 if n % 2 else layout2
        files[f"{SHOTS}/shot-{n:02d}.md"] = make(f"1.{n}", **values)
    return files


def edit(path: Path, *pairs: tuple[str, str]) -> None:
    text = path.read_text(encoding="utf-8")
    for old, new in pairs:
        assert old in text, old
        text = text.replace(old, new, 1)
    path.write_text(text, encoding="utf-8")


def clips(path: Path) -> dict[str, dict[str, object]]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))["clips"]


@pytest.fixture
def compiled(tmp_path: Path) -> Path:
    write(tmp_path, shots([1, 2, 3, 4, 5, 6, 8]))
    compile_project(tmp_path)
    return tmp_path


def test_recompile_keeps_hand_edits_and_applies_storyboard_changes(compiled: Path) -> None:
    manifest = compiled / "project.aivp.yaml"
    edit(manifest,
         ("    camera: pan left\n", "    camera: pan left   # the director likes this\n"),
         ("  shot-02:\n", "  # hero shot: upgraded by hand\n  shot-02:\n"),
         ("    camera: slow push-in\n",
          "    camera: slow push-in\n    model: fal-ai/veo3.1\n"),
         ("    prompt: |\n      [Camera: pan left, medium shot, eye-level]\n"
          "      Shot 3 happens.\n",
          "    seed: 7\n    prompt: |\n      [Camera: pan left, medium shot, eye-level]\n"
          "      Shot 3 happens.\n"),
         ("      Shot 4 happens.\n", "      Shot 4 happens, told better by hand.\n"),
         ("  shot-06:\n", "  shot-06:\n    notes: keep the reflection\n"),
         ("  shot-08:\n", "  # the last shot\n  shot-08:\n"))
    # the storyboard moves on: one prompt, one duration, shot-04's prompt and camera, a new
    # shot-07, shot-05 (unedited) and shot-06 (edited) gone
    for path in (compiled / SHOTS).glob("shot-0[56].md"):
        path.unlink()
    write(compiled, shots([1, 3, 4, 7], s1={"prompt": "Shot 1, rewritten."},
                          s3={"duration": "6s"},
                          s4={"prompt": "Shot 4, revised.", "camera": "tilt up"}))

    result = compile_project(compiled)

    text = manifest.read_text(encoding="utf-8")
    data = clips(manifest)
    assert list(data) == ["shot-01", "shot-02", "shot-03", "shot-04", "shot-06", "shot-07",
                          "shot-08"]
    assert "Shot 1, rewritten." in str(data["shot-01"]["prompt"])      # storyboard change
    assert "# the director likes this" in text                          # comment kept
    assert data["shot-02"]["model"] == "fal-ai/veo3.1"                  # model upgrade kept
    assert "  # hero shot: upgraded by hand\n  shot-02:\n" in text
    assert data["shot-03"]["seed"] == 7 and data["shot-03"]["duration"] == 6
    assert "told better by hand" in str(data["shot-04"]["prompt"])      # user wins the conflict
    assert data["shot-04"]["camera"] == "tilt up"                        # other field follows
    assert "shot-05" not in data                                          # unedited: removed
    assert data["shot-06"]["notes"] == "keep the reflection"              # edited: kept
    assert "Shot 7 happens." in str(data["shot-07"]["prompt"])           # new, in timeline order
    assert "  # the last shot\n  shot-08:\n" in text                    # still above shot-08
    assert result.conflicts == [
        "shot-04.prompt: changed in the storyboard and by hand; kept your "
        "'[Camera: slow push-in, wide shot] Shot 4 happ...' (the storyboard now says "
        "'[Camera: tilt up, wide shot] Shot 4, revised.')"]
    assert result.kept == ["shot-06: no longer in the storyboard, but edited by hand; kept "
                           "(delete it from the manifest if unwanted)"]
    assert "shot-05: removed (no longer in the storyboard)" in result.changes
    assert "shot-07: added" in result.changes
    assert "shot-03.duration: 4 → 6" in result.changes
    assert "shot-04.camera: 'slow push-in' → 'tilt up'" in result.changes
    parse_manifest(text, manifest)  # still a valid manifest

    again = compile_project(compiled)  # the conflict is settled: nothing more to do
    assert (again.written, again.changes, again.conflicts, again.kept) == (False, [], [], [])
    assert manifest.read_text(encoding="utf-8") == text


def test_compiling_twice_is_byte_identical(golden: Path) -> None:
    first = compile_project(golden)
    before = (golden / "project.aivp.yaml").read_bytes()
    stat = os.stat(golden / "project.aivp.yaml")
    second = compile_project(golden)
    assert first.written and not second.written
    assert (second.changes, second.conflicts, second.diff) == ([], [], "")
    assert (golden / "project.aivp.yaml").read_bytes() == before
    assert os.stat(golden / "project.aivp.yaml").st_mtime_ns == stat.st_mtime_ns  # untouched


def test_a_round_trip_after_a_change_keeps_the_rest_byte_identical(golden: Path) -> None:
    compile_project(golden)
    manifest = golden / "project.aivp.yaml"
    before = manifest.read_text(encoding="utf-8").splitlines()
    edit(golden / SHOTS / "shot-03.md", ("| Duration | 3s |", "| Duration | 9s |"))
    result = compile_project(golden)
    after = manifest.read_text(encoding="utf-8").splitlines()
    assert result.changes == ["shot-03.duration: 3 → 9"]
    assert [(a, b) for a, b in zip(before, after, strict=True) if a != b] == [
        ("    duration: 3", "    duration: 9")]


def test_user_deleting_a_field_or_clip_is_respected(golden: Path) -> None:
    compile_project(golden)
    manifest = golden / "project.aivp.yaml"
    text = manifest.read_text(encoding="utf-8")
    start = text.index("  shot-02:")
    end = text.index("  shot-03:")
    manifest.write_text(text[:start] + text[end:].replace("    scene_shot: '2.1'\n", ""),
                        encoding="utf-8")
    result = compile_project(golden)
    data = clips(manifest)
    assert "shot-02" not in data and "scene_shot" not in data["shot-03"]
    assert result.changes == ["shot-02: deleted from the manifest by hand; not added back"]
    assert not result.written


def test_first_compile_over_a_hand_written_manifest(tmp_path: Path) -> None:
    """No record of an earlier compile: every differing value counts as the user's."""
    write(tmp_path, {**shots([1, 2]), "project.aivp.yaml": (
        "version: 1\nname: mine\ndefaults: {provider: local}\nclips:\n"
        "  shot-02:\n    prompt: My own words.   # keep\n    seed: 3\n"
        "  extra:\n    prompt: A clip the storyboard does not know.\n")})
    result = compile_project(tmp_path)
    data = clips(tmp_path / "project.aivp.yaml")
    assert list(data) == ["shot-01", "shot-02", "extra"]
    assert data["shot-02"]["prompt"] == "My own words." and data["shot-02"]["seed"] == 3
    assert data["shot-02"]["duration"] == 4  # fields the manifest did not have are filled in
    assert "Shot 1 happens." in str(data["shot-01"]["prompt"])
    assert [c.split(":")[0] for c in result.conflicts] == ["shot-02.prompt"]
    assert data["shot-02"]["camera"] == "slow push-in"
    assert "My own words.   # keep" in (tmp_path / "project.aivp.yaml").read_text(encoding="utf-8")


def test_fresh_manifest_points_at_the_schema_when_found(tmp_path: Path) -> None:
    write(tmp_path, {"schemas/project.aivp.schema.json": "{}", **{
        f"film/{k}": v for k, v in shots([1]).items()}})
    result = compile_project(tmp_path / "film")
    assert result.text.startswith("# yaml-language-server: $schema=../schemas/"
                                  "project.aivp.schema.json\nversion: 1\nname: film\n")
    assert "defaults: {provider: local, duration: 5, aspect_ratio: '16:9', resolution: 720p" \
        in result.text


def test_dry_run_and_diff_write_nothing(golden: Path) -> None:
    result = compile_project(golden, dry_run=True)
    assert not result.written and not (golden / "project.aivp.yaml").exists()
    assert not (golden / ".aivp").exists()
    assert result.diff.startswith("--- a/project.aivp.yaml\n+++ b/project.aivp.yaml\n")
    assert "+  shot-04:\n" in result.diff
    compile_project(golden)
    edit(golden / SHOTS / "shot-04.md", ("quay into the fog", "quay into the rain"))
    before = (golden / "project.aivp.yaml").read_text(encoding="utf-8")
    preview = compile_project(golden, dry_run=True)
    assert "-      The two walk along the quay into the fog.\n" in preview.diff
    assert "+      The two walk along the quay into the rain.\n" in preview.diff
    assert (golden / "project.aivp.yaml").read_text(encoding="utf-8") == before
    assert compile_project(golden).text == preview.text


def test_strict_refuses_a_storyboard_with_problems(golden: Path) -> None:
    with pytest.raises(ManifestError, match=r"shot-03\.md:20: warning: no prompt block"):
        compile_project(golden, strict=True)
    assert not (golden / "project.aivp.yaml").exists()


def test_an_unreadable_shot_leaves_its_clip_alone(golden: Path) -> None:
    compile_project(golden)
    manifest = golden / "project.aivp.yaml"
    before = clips(manifest)["shot-02"]
    (golden / SHOTS / "shot-02.md").write_bytes(b"\x00\x01garbage")
    result = compile_project(golden)
    assert clips(manifest)["shot-02"] == before
    assert any(p.file.name == "shot-02.md" and p.severity == "error" for p in result.problems)
    assert not result.written


def test_manifest_yaml_error_names_the_line(golden: Path) -> None:
    write(golden, {"project.aivp.yaml": "version: 1\nclips:\n  a: [unclosed\n"})
    with pytest.raises(ManifestError, match=r"project\.aivp\.yaml:\d+:\d+: YAML syntax error"):
        compile_project(golden)


def test_the_write_is_atomic(golden: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    compile_project(golden)
    manifest = golden / "project.aivp.yaml"
    before = manifest.read_bytes()
    edit(golden / SHOTS / "shot-01.md", ("| Duration | 5s |", "| Duration | 6s |"),
         ("**Duration**: 5s", "**Duration**: 6s"))

    def crash(*_args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        compile_project(golden)
    assert manifest.read_bytes() == before
    assert [p.name for p in golden.iterdir() if p.name.startswith(".project")] == []


def test_missing_extra_names_the_install_command(golden: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real_import = builtins.__import__

    def no_ruamel(name: str, *args: object, **kwargs: object) -> object:
        if name.startswith("ruamel"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(builtins, "__import__", no_ruamel)
    with pytest.raises(ConfigError) as info:
        compile_project(golden)
    assert "pip install 'aivpbuild[compile]'" in str(info.value)


def test_layout_change_of_a_shot_is_just_a_storyboard_change(compiled: Path) -> None:
    write(compiled, {f"{SHOTS}/shot-01.md": layout2("1.1", prompt="Shot 1 happens.",
                                                    duration="4s", camera="pan left")})
    result = compile_project(compiled)
    assert result.conflicts == []
    assert [c.split(":")[0] for c in result.changes] == ["shot-01.prompt", "shot-01.alt_prompts"]
