"""Optional offline speech for the local renderer's dialogue track (eSpeak NG).

Two engines are tried, in order, and both are optional: the ``espeakng-loader`` Python
package (its bundled libespeak-ng, driven through ctypes in a fresh interpreter) and an
``espeak-ng``/``espeak`` program on PATH. With neither, :func:`speak` returns None and the
clip's audio is silence. :func:`engine_id` names the engine in use (with its version), so a
build can key dialogue clips on it.
"""

from __future__ import annotations

import functools
import io
import re
import shutil
import subprocess
import sys
import wave

import numpy as np

RATE = 48000
WORDS_PER_MINUTE = 150


def dialogue_text(dialogue: str | None) -> str:
    """The words to speak: the quoted lines of ``[Mara, calm]: "Text."`` (speaker tags and
    stage directions dropped), or the whole text when nothing is quoted; "" for "(none)"."""
    if not dialogue:
        return ""
    quoted = re.findall(r'"([^"]+)"|“([^”]+)”', dialogue)
    if quoted:
        return " ".join(a or b for a, b in quoted).strip()
    text = re.sub(r"\[[^\]]*\]:?|\([^)]*\)", " ", dialogue)
    return " ".join(text.split())


def speak(text: str) -> tuple[np.ndarray | None, str | None]:
    """``text`` spoken as stereo float32 samples (2 x N) at 48 kHz, and a note when it could
    not be (no engine installed, or the engine failed): then the samples are None."""
    if not text.strip():
        return None, None
    engine = _engine()
    if engine is None:
        return None, "no offline speech engine (espeak-ng) found: audio is silence"
    try:
        mono, rate = engine.synth(text)
    except (OSError, RuntimeError, subprocess.SubprocessError, wave.Error) as exc:
        return None, f"speech engine failed ({exc}): audio is silence"
    if not len(mono):
        return None, "speech engine produced no sound: audio is silence"
    return _to_48k_stereo(mono, rate), None


def engine_id() -> str:
    """The engine :func:`speak` uses, e.g. "espeak-ng 1.51 (program)", or "none"."""
    engine = _engine()
    return engine.ident if engine is not None else "none"


# libespeak-ng keeps state between utterances (its pitch flutter runs on), so the same text
# spoken twice in one process differs: each utterance gets a fresh interpreter, like a program.
_CHILD = r"""
import ctypes, io, sys, wave
import espeakng_loader as loader
lib = ctypes.CDLL(loader.get_library_path())
chunks = []
kind = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                        ctypes.c_void_p)
def collect(wav, count, events):
    if wav and count > 0:
        chunks.append(ctypes.string_at(wav, count * 2))
    return 0
callback = kind(collect)
lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
lib.espeak_SetSynthCallback.argtypes = [kind]
lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                             ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
rate = lib.espeak_Initialize(2, 0, loader.get_data_path().encode(), 0)  # 2: synchronous
if rate <= 0:
    sys.exit("libespeak-ng did not initialise")
lib.espeak_SetSynthCallback(callback)
lib.espeak_SetVoiceByName(b"en")
lib.espeak_SetParameter(1, int(sys.argv[1]), 0)  # 1: words per minute
text = sys.stdin.buffer.read() + b"\0"
if lib.espeak_Synth(text, len(text), 0, 1, 0, 1, None, None):  # characters, UTF-8
    sys.exit("espeak_Synth failed")
lib.espeak_Synchronize()
out = io.BytesIO()
with wave.open(out, "wb") as writer:
    writer.setnchannels(1)
    writer.setsampwidth(2)
    writer.setframerate(rate)
    writer.writeframes(b"".join(chunks))
sys.stdout.buffer.write(out.getvalue())
"""


class _Library:
    """libespeak-ng bundled by the espeakng-loader package, run in a fresh interpreter."""

    def __init__(self, version: str) -> None:
        self.ident = f"espeak-ng (espeakng-loader {version}, library)"

    def synth(self, text: str) -> tuple[np.ndarray, int]:
        wav = subprocess.run([sys.executable, "-c", _CHILD, str(WORDS_PER_MINUTE)],
                             input=text.encode(), check=True, capture_output=True,
                             timeout=60).stdout
        return _read_wav(wav)


class _Program:
    """An espeak-ng (or espeak) executable writing a WAV file to stdout."""

    def __init__(self, program: str) -> None:
        self.program = program
        try:
            banner = subprocess.run([program, "--version"], capture_output=True, text=True,
                                    timeout=10, check=False).stdout
        except (OSError, subprocess.SubprocessError):
            banner = ""
        found = re.search(r"\d+\.\d+(\.\d+)?", banner)
        name = "espeak-ng" if "ng" in program.rsplit("/", 1)[-1] else "espeak"
        self.ident = f"{name} {found.group(0) if found else '?'} (program)"

    def synth(self, text: str) -> tuple[np.ndarray, int]:
        wav = subprocess.run([self.program, "--stdout", "-v", "en", "-s", str(WORDS_PER_MINUTE),
                              "--", text], check=True, capture_output=True, timeout=60).stdout
        return _read_wav(wav)


@functools.cache
def _engine() -> _Library | _Program | None:
    import importlib.metadata
    import importlib.util

    if importlib.util.find_spec("espeakng_loader") is not None:
        try:
            return _Library(importlib.metadata.version("espeakng-loader"))
        except importlib.metadata.PackageNotFoundError:
            return _Library("?")
    program = shutil.which("espeak-ng") or shutil.which("espeak")
    return _Program(program) if program else None


def _read_wav(wav: bytes) -> tuple[np.ndarray, int]:
    """A 16-bit PCM WAV → mono float32 samples and the sample rate."""
    with wave.open(io.BytesIO(wav)) as reader:
        rate, channels = reader.getframerate(), reader.getnchannels()
        data = np.frombuffer(reader.readframes(reader.getnframes()), dtype=np.int16)
    return data.reshape(-1, channels).mean(axis=1).astype(np.float32) / 32768, rate


def _to_48k_stereo(mono: np.ndarray, rate: int) -> np.ndarray:
    """Linear resampling to 48 kHz, duplicated to two channels (float32, 2 x N)."""
    positions = np.arange(0, len(mono), rate / RATE)
    resampled = np.interp(positions, np.arange(len(mono)), mono).astype(np.float32)
    return np.stack([resampled, resampled])
