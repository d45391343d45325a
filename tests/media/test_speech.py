"""The optional speech engine: dialogue parsing, the program engine (with a stand-in program),
and the real engine when one is installed."""

from __future__ import annotations

import shutil
import stat
import sys
from pathlib import Path

import numpy as np
import pytest

from aivpbuild.media import speech


@pytest.mark.parametrize(("dialogue", "words"), [
    ('[Mara, calm]: "They\'re not coming back."', "They're not coming back."),
    ('[A]: "One." [B, whispering]: "Two."', "One. Two."),
    ("[Elena, whispering]: just go", "just go"),
    ("(none)", ""), (None, ""), ("", ""),
])
def test_dialogue_text_keeps_only_the_spoken_words(dialogue: str | None, words: str) -> None:
    assert speech.dialogue_text(dialogue) == words


FAKE = """\
import io, sys, wave
args = sys.argv[1:]
if args == ["--version"]:
    print("eSpeak NG text-to-speech: 9.8.7  Data at: /nowhere")
    sys.exit(0)
if "--stdout" not in args or args[-2] != "--":
    sys.exit("unexpected arguments: %r" % args)
text = args[-1]
out = io.BytesIO()
with wave.open(out, "wb") as w:
    w.setnchannels(1); w.setsampwidth(2); w.setframerate(22050)
    w.writeframes(b"\\x00\\x40" * (2205 * len(text)))  # 0.1 s per character at +0.5
sys.stdout.buffer.write(out.getvalue())
"""


@pytest.fixture
def fake_program(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    program = tmp_path / "espeak-ng"
    program.write_text(f"#!{sys.executable}\n{FAKE}")
    program.chmod(program.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setattr(speech, "_engine", lambda: speech._Program(str(program)))
    return program


def test_the_program_engine_is_resampled_to_48k_stereo(fake_program: Path) -> None:
    samples, note = speech.speak("hi!")
    assert note is None and samples is not None
    assert samples.shape == (2, 14400)  # 0.3 s at 48 kHz
    assert np.allclose(samples, 0.5)
    assert speech.engine_id() == "espeak-ng 9.8.7 (program)"


def test_a_failing_engine_means_silence_and_a_note(fake_program: Path) -> None:
    fake_program.write_text(f"#!{sys.executable}\nimport sys\nsys.exit(3)\n")
    samples, note = speech.speak("hello")
    assert samples is None and note is not None and note.startswith("speech engine failed")


def test_no_engine_means_silence_and_a_note(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(speech, "_engine", lambda: None)
    assert speech.speak("hello") == (None, "no offline speech engine (espeak-ng) found: "
                                           "audio is silence")
    assert speech.engine_id() == "none"
    assert speech.speak("  ") == (None, None)


def test_the_installed_engine_speaks_the_same_way_every_time() -> None:
    if speech._engine() is None:
        pytest.skip("no espeak-ng program or espeakng-loader package installed")
    first, note = speech.speak("Delivery for apartment nine.")
    again, _ = speech.speak("Delivery for apartment nine.")
    assert note is None and first is not None and again is not None
    assert np.array_equal(first, again)
    assert 0.8 < first.shape[1] / 48000 < 4 and np.abs(first).max() > 0.1


def test_a_program_on_path_is_found(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import importlib.util

    if importlib.util.find_spec("espeakng_loader") is not None:
        pytest.skip("the espeakng-loader package takes precedence here")
    monkeypatch.setattr(shutil, "which", lambda name: f"/opt/bin/{name}")
    monkeypatch.setattr(speech._Program, "__init__",
                        lambda self, program: setattr(self, "program", program))
    speech._engine.cache_clear()
    try:
        engine = speech._engine()
        assert isinstance(engine, speech._Program) and engine.program == "/opt/bin/espeak-ng"
    finally:
        speech._engine.cache_clear()
