"""A compiled manifest builds with the local renderer, and re-compiling makes nothing stale."""

from __future__ import annotations

from pathlib import Path

from aivpbuild.api import Project
from aivpbuild.compile import compile_project
from tests.helpers import keyframe
from tests.storyboard.helpers import SHOTS, layout1, layout2, write
from tests.storyboard.test_merge import edit


def test_compile_build_recompile_nothing_stale(tmp_path: Path) -> None:
    write(tmp_path, {
        f"{SHOTS}/shot-01.md": layout1("1.1", prompt="A door {{ opens }}.", duration="1s"),
        f"{SHOTS}/shot-02.md": layout2("1.2", prompt="Rain.", duration="1s",
                                       characters=[("Mara", "front")]),
        "script/characters/mara.md": "# Character: Mara\n\n## Prompt Anchor Phrase\n> a courier\n",
        "script/scenes/street.md": "# Scene: Street\n\n## Scene Prompt\n> a street\n"})
    keyframe(tmp_path / "image/frames/shot-02-ff.png")
    keyframe(tmp_path / "image/characters/mara-front.png")
    compile_project(tmp_path)
    manifest = tmp_path / "project.aivp.yaml"
    # hand edits: tiny test renders, and a prompt that uses the character sheet
    edit(manifest, ("resolution: 720p", "resolution: 64x36, fps: 8"),
         ("      Rain.\n",
          "      Rain on {{ characters.mara.anchor }} in {{ scenes.street.prompt }}.\n"))
    result = Project.load(tmp_path).build()
    assert not result.failed
    assert (tmp_path / "video/clips/shot-01.mp4").is_file()
    assert compile_project(tmp_path).written is False
    statuses = Project.load(tmp_path).status()
    assert [s.needs_work for s in statuses] == [False] * len(statuses)
    # editing the character sheet makes exactly the clip whose rendered prompt uses it stale
    edit(tmp_path / "script/characters/mara.md", ("> a courier", "> a tired courier"))
    stale = {s.target for s in Project.load(tmp_path).status() if s.needs_work}
    assert stale == {"clip:shot-02", "edit:final"}
