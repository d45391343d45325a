"""Comments stay above the entry they were written for while compile adds, removes and
rewrites entries around them."""

from __future__ import annotations

import random
import re
from pathlib import Path

from aivpbuild.compile import compile_project
from tests.storyboard.test_merge import clips, edit, shots, write


def comment_owners(text: str) -> dict[str, str]:
    """Each ``# note ...`` comment line → the first key line below it."""
    lines = text.splitlines()
    owners = {}
    for i, line in enumerate(lines):
        if line.strip().startswith("# note"):
            below = next(ln for ln in lines[i + 1 :]
                         if ln.strip() and not ln.strip().startswith("#"))
            owners[line.strip()] = below.strip()
    return owners


def test_new_first_clip_goes_below_the_header_comment_of_the_old_first(tmp_path: Path) -> None:
    write(tmp_path, shots([2, 3]))
    compile_project(tmp_path)
    manifest = tmp_path / "project.aivp.yaml"
    edit(manifest, ("clips:\n  shot-02:\n", "clips:   # all clips\n  # note two\n  shot-02:\n"))
    write(tmp_path, shots([1]))
    compile_project(tmp_path)
    text = manifest.read_text(encoding="utf-8")
    assert "clips:   # all clips\n  shot-01:\n" in text
    assert comment_owners(text) == {"# note two": "shot-02:"}


def test_removed_clips_hand_their_following_comments_on(tmp_path: Path) -> None:
    write(tmp_path, shots([1, 2, 3, 4]))
    compile_project(tmp_path)
    manifest = tmp_path / "project.aivp.yaml"
    edit(manifest, ("  shot-03:\n", "  # note three\n\n  shot-03:\n"),
         ("edit: {", "# note edit\nedit: {"))
    for n in (2, 4):  # unedited: removed; the comments below them must survive
        (tmp_path / f"storyboard/storyboard-final/shots/shot-0{n}.md").unlink()
    result = compile_project(tmp_path)
    text = manifest.read_text(encoding="utf-8")
    assert list(clips(manifest)) == ["shot-01", "shot-03"]
    assert result.kept == []
    assert comment_owners(text) == {"# note three": "shot-03:",
                                    "# note edit": "edit: {output: video/final.mp4}"}
    assert "  # note three\n\n  shot-03:\n" in text  # the blank line too


def test_rewritten_block_prompt_keeps_the_comment_below_it(tmp_path: Path) -> None:
    write(tmp_path, shots([1, 2]))
    compile_project(tmp_path)
    manifest = tmp_path / "project.aivp.yaml"
    text = manifest.read_text(encoding="utf-8")
    # the user reflows shot-02's prompt as a folded block (same words) and puts a note under it
    block = "\n      [Camera: slow push-in, wide shot]\n      Shot 2 happens.\n"
    text = text.replace(f"    prompt: |{block}",
                        f"    prompt: >{block}    # note under the prompt\n")
    manifest.write_text(text, encoding="utf-8")
    write(tmp_path, shots([2], s2={"prompt": "Shot 2, new words."}))
    result = compile_project(tmp_path)
    assert result.conflicts == []  # reflowing is not an edit
    after = manifest.read_text(encoding="utf-8")
    assert "Shot 2, new words." in str(clips(manifest)["shot-02"]["prompt"])
    assert comment_owners(after) == {"# note under the prompt": "camera: slow push-in"}


def test_random_edits_never_lose_or_move_a_comment(tmp_path: Path) -> None:
    rng = random.Random(6)
    present = [1, 2, 3, 4, 5, 6]
    write(tmp_path, shots(present))
    compile_project(tmp_path)
    manifest = tmp_path / "project.aivp.yaml"
    owners: dict[str, str] = {}
    board = tmp_path / "storyboard/storyboard-final/shots"
    for step in range(12):
        text = manifest.read_text(encoding="utf-8")
        ids = re.findall(r"^  (shot-\d\d):", text, re.M)
        target = rng.choice(ids)
        note = f"# note {step}"
        text = text.replace(f"  {target}:\n", f"  {note}\n  {target}:\n", 1)
        manifest.write_text(text, encoding="utf-8")
        owners[note] = f"{target}:"
        # the storyboard drops one shot, adds one, rewrites one
        gone = rng.choice(present)
        present.remove(gone)
        (board / f"shot-{gone:02d}.md").unlink()
        new = rng.choice([n for n in range(1, 10) if n not in present])
        present.append(new)
        changed = rng.choice(present)
        write(tmp_path, shots([new, changed], **{f"s{changed}": {"prompt": f"Take {step}."}}))
        compile_project(tmp_path)
        text = manifest.read_text(encoding="utf-8")
        found = comment_owners(text)
        for comment, owner in owners.items():
            assert found.get(comment, "").startswith(owner.split(":")[0]), (step, comment, text)
        # a clip with a comment above it counts as edited, so it is never removed
        assert {o.rstrip(":") for o in owners.values()} <= set(clips(manifest))


def test_a_comment_on_the_clip_line_counts_as_an_edit(tmp_path: Path) -> None:
    write(tmp_path, shots([1, 2, 3]))
    compile_project(tmp_path)
    manifest = tmp_path / "project.aivp.yaml"
    edit(manifest, ("  shot-02:\n", "  shot-02:   # keep this one\n"))
    for n in (2, 3):
        (tmp_path / f"storyboard/storyboard-final/shots/shot-0{n}.md").unlink()
    result = compile_project(tmp_path)
    assert list(clips(manifest)) == ["shot-01", "shot-02"]
    assert [k.split(":")[0] for k in result.kept] == ["shot-02"]
    assert "  shot-02:   # keep this one\n" in manifest.read_text(encoding="utf-8")
