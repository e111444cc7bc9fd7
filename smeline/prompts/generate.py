"""Placeholder audio for every prompt, from the text in ``catalogue.py``.

Speech comes from Debian's ``espeak-ng`` (Mandarin) and is converted by ``sox`` to
8 kHz mono 16-bit PCM WAV, what Asterisk plays without transcoding; tones and
silences are synthesised by sox directly. Files go to ``<out>/zh/<name>.wav``.

A name that already has a file (in any audio format Asterisk reads) is skipped
unless ``force``: an operator's recorded voice is never overwritten by a plain
run. This is a set-up tool: it runs subprocesses synchronously, a few at a time.

    python -m smeline.prompts.generate --out ./var/sounds [--force] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from smeline.prompts.catalogue import PROMPTS, SILENCES, TONES, Tone, speech_text

LANGUAGE_DIR = "zh"

# espeak-ng's Mandarin voice that reads Latin text as pinyin. Debian's plain
# "cmn" voice reads Latin as English, and without the optional extended
# dictionary it falls back to spelling characters' pinyin in English; the pinyin
# voice reads Chinese characters correctly and takes the SPEECH_HINTS pinyin.
VOICE = "cmn-latn-pinyin"
SPEED_WPM = 150

# 8 kHz, mono, 16-bit signed PCM: Asterisk's slin, played without transcoding.
SOX_FORMAT: tuple[str, ...] = ("-r", "8000", "-c", "1", "-b", "16", "-e", "signed-integer")

# Extensions of audio formats Asterisk may find for a sound name; a file with any
# of them counts as present (an operator may record in another format).
AUDIO_EXTENSIONS: tuple[str, ...] = (
    "wav",
    "WAV",
    "wav16",
    "sln",
    "sln16",
    "raw",
    "ulaw",
    "alaw",
    "gsm",
    "g722",
    "g729",
    "g726",
    "ilbc",
    "siren7",
    "siren14",
    "ogg",
    "opus",
)

DEBIAN_PACKAGES = "espeak-ng sox"
_TOOLS = ("espeak-ng", "sox")


class PromptToolMissing(RuntimeError):
    """espeak-ng or sox is not installed."""

    def __init__(self, missing_tools: Sequence[str]) -> None:
        self.missing_tools = tuple(missing_tools)
        super().__init__(
            f"{', '.join(self.missing_tools)} not found on PATH; prompt audio needs "
            f"Debian's packages: apt-get install -y {DEBIAN_PACKAGES}"
        )


class PromptGenerationError(RuntimeError):
    """A synthesiser or converter run failed."""


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise PromptToolMissing([name])
    return path


def check_tools() -> None:
    """Raise ``PromptToolMissing`` naming every missing tool."""
    absent = [name for name in _TOOLS if shutil.which(name) is None]
    if absent:
        raise PromptToolMissing(absent)


def sound_path(out_dir: Path, name: str) -> Path:
    """Where the generated file for ``name`` goes."""
    return out_dir / LANGUAGE_DIR / f"{name}.wav"


def existing_file(out_dir: Path, name: str) -> Path | None:
    """A file Asterisk would find for ``name`` (any audio format), if there is one."""
    base = out_dir / LANGUAGE_DIR / name
    for ext in AUDIO_EXTENSIONS:
        candidate = base.with_name(f"{base.name}.{ext}")
        if candidate.is_file():
            return candidate
    return None


def missing(out_dir: Path) -> list[str]:
    """Catalogue names that have no sound file under ``<out_dir>/zh`` (a health check)."""
    return [name for name in PROMPTS if existing_file(out_dir, name) is None]


def _run(argv: list[str]) -> None:
    # An argument list, never a shell: the text is one argv element.
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise PromptGenerationError(
            f"{Path(argv[0]).name} failed ({result.returncode}): {result.stderr.strip()}"
        )


def _speech(text: str, target: Path, work: Path) -> None:
    raw = work / "espeak.wav"
    _run(
        [
            _tool("espeak-ng"),
            "-v",
            VOICE,
            "-s",
            str(SPEED_WPM),
            "-b",
            "1",  # the text is UTF-8 whatever the locale
            "-w",
            str(raw),
            "--",
            text,
        ]
    )
    # gain -n -3: peaks at -3 dBFS, so resampling does not clip espeak's full-scale
    # output and the prompts share one level.
    _run([_tool("sox"), str(raw), *SOX_FORMAT, str(target), "gain", "-n", "-3"])


def _tone(tone: Tone, target: Path) -> None:
    argv = [_tool("sox"), "-D", "-n", *SOX_FORMAT, str(target)]
    for index, (seconds, hertz) in enumerate(tone.steps):
        if index:
            argv.append(":")  # the next effects chain, appended to the same file
        fade = min(0.01, seconds / 4)
        argv += ["synth", f"{seconds:g}", "sine", f"{hertz:g}"]
        argv += ["fade", "h", f"{fade:g}", f"{seconds:g}", f"{fade:g}", "vol", f"{tone.volume:g}"]
    _run(argv)


def _silence(seconds: float, target: Path) -> None:
    # -D: no dither, so the samples are exact zeros.
    _run([_tool("sox"), "-D", "-n", *SOX_FORMAT, str(target), "trim", "0", f"{seconds:g}"])


def _generate_one(out_dir: Path, name: str) -> Path:
    target = sound_path(out_dir, name)
    target.parent.mkdir(parents=True, exist_ok=True)
    # Work in a hidden directory beside the target, then rename into place, so a
    # half-written file never looks present.
    with tempfile.TemporaryDirectory(prefix=".smeline-prompt-", dir=target.parent) as tmp:
        work = Path(tmp)
        staged = work / "out.wav"
        if name in TONES:
            _tone(TONES[name], staged)
        elif name in SILENCES:
            _silence(SILENCES[name], staged)
        else:
            _speech(speech_text(name), staged, work)
        os.replace(staged, target)
    return target


def _workers() -> int:
    return max(1, min(4, (os.cpu_count() or 1) * 2))


def generate(
    out_dir: Path, *, names: Iterable[str] | None = None, force: bool = False
) -> list[Path]:
    """Write ``<out_dir>/zh/<name>.wav`` for each name (all by default).

    Names that already have a file are skipped unless ``force``. Returns the
    files written. Raises ``KeyError`` for a name not in the catalogue and
    ``PromptToolMissing`` when espeak-ng or sox is not installed.
    """
    selected = list(PROMPTS) if names is None else list(dict.fromkeys(names))
    unknown = [name for name in selected if name not in PROMPTS]
    if unknown:
        raise KeyError(f"not in the prompt catalogue: {', '.join(unknown)}")
    check_tools()
    todo = [name for name in selected if force or existing_file(out_dir, name) is None]
    if not todo:
        return []
    with ThreadPoolExecutor(max_workers=_workers(), thread_name_prefix="prompts") as pool:
        return list(pool.map(lambda name: _generate_one(out_dir, name), todo))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m smeline.prompts.generate",
        description="Generate placeholder zh prompt audio (espeak-ng + sox) for Asterisk.",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("./var/sounds"),
        help="Asterisk sounds directory; files go to OUT/zh/<name>.wav (default ./var/sounds)",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="regenerate .wav files that exist (overwrites recorded voices!)",
    )
    parser.add_argument(
        "--only", nargs="+", metavar="NAME", help="only these sound names, e.g. smeline/welcome"
    )
    args = parser.parse_args(argv)
    out: Path = args.out
    started = time.monotonic()
    try:
        written = generate(out, names=args.only, force=args.force)
    except PromptToolMissing as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyError as exc:
        print(f"error: {exc.args[0]}", file=sys.stderr)
        return 1
    except PromptGenerationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    elapsed = time.monotonic() - started
    for path in written:
        print(path)
    total = len(PROMPTS) if args.only is None else len(set(args.only))
    print(
        f"{len(written)} written, {total - len(written)} kept, in {elapsed:.1f} s "
        f"under {out / LANGUAGE_DIR}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
