"""The HTML review page: written after a build and by `aivpbuild report`, one entry per clip,
relative links that resolve, the keyframe of I2V clips, totals, escaping, unbuilt clips."""

from __future__ import annotations

import shutil
from fractions import Fraction
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from PIL import Image

from aivpbuild.api import Project
from tests.helpers import manifest, run_cli, write_project
from tests.test_build import build, chain_project, edit_manifest


class Page(HTMLParser):
    """The parts of the page the tests look at: cards, media sources, links, text."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.cards: dict[str, dict[str, str]] = {}
        self.media: list[tuple[str, str, str | None]] = []  # (tag, url, card id)
        self.scripts = 0
        self.text: list[str] = []
        self._card: str | None = None
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "article":
            self._card = a["data-id"]
            self.cards[self._card] = a
        for name in ("src", "href", "poster"):
            if a.get(name) and not a[name].startswith("#"):
                self.media.append((f"{tag}.{name}", a[name], self._card))
        if tag == "script":
            self.scripts += 1

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def in_card(self, clip: str, tag: str) -> list[str]:
        return [url for t, url, card in self.media if card == clip and t == tag]


def read_page(root: Path) -> Page:
    return Page((root / "video/review.html").read_text("utf-8"))


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """chain_project built and reviewed; c is marked continuous, so it fails (it does not
    continue b)."""
    root = chain_project(tmp_path_factory.mktemp("report") / "p")
    edit_manifest(root, lambda d: d["clips"]["c"].update(continuity=True))
    build(root)
    assert not Project.load(root).review()["c"]["passed"]  # `review` updates the page too
    return root


def test_the_page_is_written_after_a_build_with_every_clip(built: Path) -> None:
    page = read_page(built)
    assert list(page.cards) == ["a", "b", "c"]
    assert {c["data-status"] for c in page.cards.values()} == {"ok", "failed"}
    assert page.cards["c"]["data-status"] == "failed"
    assert page.scripts == 1  # inline, no script loaded from anywhere


def test_every_relative_link_resolves_to_a_file(built: Path) -> None:
    page = read_page(built)
    assert page.media
    for tag, url, _card in page.media:
        assert "://" not in url and not url.startswith("/"), url
        assert (built / "video" / url).resolve().is_file(), (tag, url)
    for clip in ("a", "b", "c"):
        assert page.in_card(clip, "video.src") == [f"clips/{clip}.mp4"]


def test_i2v_clips_show_their_keyframe_beside_the_first_frame(built: Path) -> None:
    page = read_page(built)
    for clip in ("b", "c"):
        images = page.in_card(clip, "img.src")
        assert len(images) == 3 and images[0].endswith("-key.jpg"), images
        assert images[1].endswith("-first.jpg") and images[2].endswith("-last.jpg")
    assert [u for u in page.in_card("a", "img.src") if u.endswith("-key.jpg")] == []
    with Image.open(built / "video" / page.in_card("c", "img.src")[0]) as key:
        assert key.size == (64, 36)  # small pictures are not enlarged


def test_totals_and_review_flags(built: Path) -> None:
    html = (built / "video/review.html").read_text("utf-8")
    assert '<dd id="total-clips">3</dd>' in html and '<dd id="total-failed">1</dd>' in html
    assert '<dd id="total-spent">$0.00</dd>' in html
    card_c = html[html.index('id="clip-c"'):]
    assert 'class="fail" title=' in card_c and "continuity" in card_c
    assert 'class="pass" title=' in html[html.index('id="clip-a"'):html.index('id="clip-b"')]


def test_takes_link_to_the_cached_files(tmp_path: Path) -> None:
    root = write_project(tmp_path / "p", manifest({"a": {"prompt": "hand held", "camera": "handheld"}}))
    build(root)
    Project.load(root).reroll("a", jobs=1)
    page = read_page(root)
    links = [u for t, u, card in page.media if card == "a" and t == "a.href" and "cache/objects" in u]
    assert len(links) == 2
    assert all((root / "video" / u).resolve().is_file() for u in links)
    html = (root / "video/review.html").read_text("utf-8")
    assert 'class="take current"' in html and "take 2" in html


def test_prompts_are_escaped(tmp_path: Path) -> None:
    evil = '<script>alert("x")</script> & <b>bold</b>'
    root = write_project(tmp_path / "p", manifest({"a": {"prompt": evil}}))
    build(root)
    html = (root / "video/review.html").read_text("utf-8")
    assert "<script>alert" not in html and "<b>bold" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;" in html
    assert read_page(root).scripts == 1


def test_unbuilt_clips_are_listed_as_not_built(tmp_path: Path) -> None:
    root = write_project(tmp_path / "p", manifest({"a": {"prompt": "one"}, "b": {"prompt": "two"}}))
    build(root, "a")
    result = run_cli("report", "-C", str(root))
    assert result.code == 0, result.err
    assert result.out.strip() == f"wrote {root / 'video/review.html'}"
    page = read_page(root)
    assert page.cards["b"]["data-status"] == "not built"
    assert page.in_card("b", "video.src") == [] and page.in_card("b", "img.src") == []
    assert "not built" in "".join(page.text)
    assert '<dd id="total-clips">2</dd>' in (root / "video/review.html").read_text("utf-8")


def test_report_before_any_build_and_to_another_path(tmp_path: Path) -> None:
    root = write_project(tmp_path / "p", manifest({"a": {"prompt": "one"}}))
    out = tmp_path / "elsewhere" / "page.html"
    path = Project.load(root).report(out)
    assert path == out and Page(out.read_text("utf-8")).cards["a"]["data-status"] == "not built"
    assert not (root / "video/contact-sheet.png").exists()


def test_thumbnails_are_reused_and_pruned(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = write_project(tmp_path / "p", manifest({"a": {"prompt": "one"}}))
    build(root)
    thumbs = sorted(p.name for p in (root / "video/review").iterdir())
    assert len(thumbs) == 2
    sheet = root / "video/contact-sheet.png"
    assert not sheet.exists()  # a build draws no contact sheet until there is one …
    Project.load(root).report()
    drawn = sheet.read_bytes()  # … `report` draws it

    def no_decoding(*_args: Any, **_kwargs: Any) -> None:
        raise AssertionError("decoded a clip whose thumbnails exist")

    monkeypatch.setattr("aivpbuild.media.thumbs.clip_thumbs", no_decoding)
    monkeypatch.setattr("aivpbuild.media.contact_sheet.contact_sheet", no_decoding)
    Project.load(root).report()
    monkeypatch.undo()
    edit_manifest(root, lambda d: d["clips"]["a"].update(prompt="two"))
    build(root)
    after = sorted(p.name for p in (root / "video/review").iterdir())
    assert len(after) == 2 and not set(after) & set(thumbs)
    assert sheet.read_bytes() != drawn  # … and from then on builds keep it current


def test_a_page_that_cannot_be_written_does_not_fail_the_build(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_args: Any, **_kwargs: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("aivpbuild.report.write_report", broken)
    root = write_project(tmp_path / "p", manifest({"a": {"prompt": "one"}}))
    events: list[tuple[str, Any]] = []
    result = build(root, report=lambda kind, tid, **info: events.append((kind, info.get("message"))))
    assert result.failed == [] and (root / "video/clips/a.mp4").is_file()
    assert ("notice", "warning: the review page was not written: disk full") in events


def test_clean_removes_the_page(built: Path, tmp_path: Path) -> None:
    root = tmp_path / "copy"
    shutil.copytree(built, root)
    assert run_cli("clean", "-C", str(root)).code == 0
    assert not (root / "video/review.html").exists() and not (root / "video/review").exists()


def test_thumbs_of_a_clip_with_several_keyframes(tmp_path: Path) -> None:
    from aivpbuild.media.thumbs import clip_thumbs

    colours = [(200, 30, 30)] + [(30, 30, 200)] * 10 + [(240, 240, 240)]
    path = tmp_path / "gop.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=Fraction(12))
        stream.width, stream.height, stream.pix_fmt = 64, 36, "yuv420p"
        stream.codec_context.gop_size = 4
        for i, colour in enumerate(colours):
            frame = av.VideoFrame.from_ndarray(np.full((36, 64, 3), colour, np.uint8), format="rgb24")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    clip_thumbs(path, tmp_path / "first.jpg", tmp_path / "last.jpg")
    first = np.asarray(Image.open(tmp_path / "first.jpg")).reshape(-1, 3).mean(0)
    last = np.asarray(Image.open(tmp_path / "last.jpg")).reshape(-1, 3).mean(0)
    assert np.abs(first - (200, 30, 30)).max() < 15 and np.abs(last - (240, 240, 240)).max() < 15


@pytest.mark.parametrize("last_is_skipped", [False, True])
def test_the_last_frame_of_a_clip_with_b_frames(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                last_is_skipped: bool) -> None:
    """B-frames are skipped on the way to the last frame; when the last frame itself would be
    skipped, everything is decoded instead (forced here), and the thumbnail is the same."""
    from aivpbuild.media import thumbs

    colours = [(200, 30, 30)] + [(30, 30 + 8 * i, 200) for i in range(22)] + [(240, 240, 240)]
    path = tmp_path / "bframes.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=Fraction(12))
        stream.width, stream.height, stream.pix_fmt = 64, 36, "yuv420p"
        stream.options = {"bf": "3", "g": "48"}
        for i, colour in enumerate(colours):
            frame = av.VideoFrame.from_ndarray(np.full((36, 64, 3), colour, np.uint8), format="rgb24")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    with av.open(str(path)) as container:
        assert any(f.pict_type == av.video.frame.PictureType.B for f in container.decode(video=0))
    if last_is_skipped:
        real = thumbs._last_frame

        def skipped_last(container: Any, stream: Any, *, skip_nonref: bool) -> Any:
            found = real(container, stream, skip_nonref=skip_nonref)  # the decoder really ran
            return None if skip_nonref else found

        monkeypatch.setattr(thumbs, "_last_frame", skipped_last)
    thumbs.clip_thumbs(path, tmp_path / "first.jpg", tmp_path / "last.jpg")
    last = np.asarray(Image.open(tmp_path / "last.jpg")).reshape(-1, 3).mean(0)
    assert np.abs(last - (240, 240, 240)).max() < 15


def test_very_large_projects_get_the_page_only_from_report(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("aivpbuild.report.AUTO_PAGE_MAX_CLIPS", 1)
    root = write_project(tmp_path / "p", manifest({"a": {"prompt": "one"}, "b": {"prompt": "two"}}))
    build(root)
    assert not (root / "video/review.html").exists() and not (root / "video/review").exists()
    Project.load(root).report()
    assert list(read_page(root).cards) == ["a", "b"]
