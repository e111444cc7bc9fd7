"""Prompt catalogue and placeholder audio (real espeak-ng and sox, never mocked)."""

from __future__ import annotations

import array
import os
import re
import shutil
import sys
import time
import wave
from pathlib import Path, PurePosixPath

import pytest

from smeline.prompts import generate as gen
from smeline.prompts.catalogue import (
    CALLBACK_DIGIT,
    CATEGORY_MENU,
    COUNTY_MENU,
    PROMPTS,
    SILENCES,
    SPEECH,
    SPEECH_HINTS,
    TONES,
    speech_text,
)
from smeline.reference.data import CATEGORIES, CITY_CODE, COUNTIES

CJK = re.compile(r"[\u4e00-\u9fff]")
COUNTY_NAMES = {code: name for code, name in COUNTIES}
CATEGORY_NAMES = dict(CATEGORIES)


# --- catalogue ------------------------------------------------------------------


def test_every_speech_text_is_chinese_and_tones_are_not_speech() -> None:
    assert set(SPEECH) | set(TONES) | set(SILENCES) == set(PROMPTS)
    assert not set(TONES) & set(SILENCES)
    assert not set(SPEECH) & (set(TONES) | set(SILENCES))
    for name, text in PROMPTS.items():
        assert text.strip(), name
        if name in SPEECH:
            assert CJK.search(text), (name, text)
            assert not re.search(r"[A-Za-z]", text), (name, text)  # the voice reads Latin as pinyin
        else:
            assert not CJK.search(text), (name, text)


def test_names_are_safe_relative_paths() -> None:
    for name in PROMPTS:
        path = PurePosixPath(name)
        assert not path.is_absolute(), name
        assert ".." not in path.parts and "." not in path.parts, name
        assert "\\" not in name and not name.endswith("/"), name
        assert re.fullmatch(r"[a-z0-9][a-z0-9/-]*", name), name
        assert path.suffix == "", name  # no extension: Asterisk picks the format


def test_county_menu_reads_the_eight_counties_in_gb_order() -> None:
    assert [digit for digit, _ in COUNTY_MENU] == [str(n) for n in range(1, 9)]
    assert [code for _, code in COUNTY_MENU] == [code for code, _ in COUNTIES if code != CITY_CODE]
    assert [code for _, code in COUNTY_MENU] == [
        "441402", "441403", "441481", "441426", "441427", "441422", "441423", "441424"
    ]  # fmt: skip
    text = PROMPTS["smeline/county-menu"]
    positions = []
    for digit, code in COUNTY_MENU:
        phrase = f"{COUNTY_NAMES[code]}请按{digit}"
        assert text.count(phrase) == 1, phrase
        positions.append(text.index(phrase))
    assert positions == sorted(positions)
    assert [name for name in COUNTY_NAMES.values() if name in text] == [
        COUNTY_NAMES[code] for _, code in COUNTY_MENU
    ]


def test_category_menu_reads_the_nine_categories_in_order() -> None:
    assert [digit for digit, _ in CATEGORY_MENU] == [str(n) for n in range(1, 10)]
    assert [code for _, code in CATEGORY_MENU] == [code for code, _ in CATEGORIES]
    text = PROMPTS["smeline/category-menu"]
    positions = []
    for digit, code in CATEGORY_MENU:
        phrase = f"{CATEGORY_NAMES[code]}请按{digit}"
        assert text.count(phrase) == 1, phrase
        positions.append(text.index(phrase))
    assert positions == sorted(positions)


def test_menu_digits_are_unique() -> None:
    for menu in (COUNTY_MENU, CATEGORY_MENU):
        digits = [digit for digit, _ in menu]
        codes = [code for _, code in menu]
        assert len(set(digits)) == len(digits)
        assert len(set(codes)) == len(codes)
        assert all(re.fullmatch(r"[0-9]", digit) for digit in digits)
    survey = re.findall(r"请按([0-9*#])", PROMPTS["smeline/survey"])
    assert survey == ["1", "2", "3"]
    assert f"按{CALLBACK_DIGIT}" in PROMPTS["smeline/callback-offer"]


def test_digits_are_read_the_chinese_phone_way() -> None:
    assert PROMPTS["digits/1"] == "幺"
    assert PROMPTS["digits/0"] == "零"
    assert PROMPTS["digits/star"] == "星"
    assert PROMPTS["digits/pound"] == "井"
    for n in range(10):
        assert f"digits/{n}" in SPEECH


def test_required_prompts_are_present() -> None:
    for name in (
        "smeline/welcome",
        "smeline/recording-notice",
        "smeline/county-menu",
        "smeline/category-menu",
        "smeline/invalid-choice",
        "smeline/no-input",
        "smeline/connecting-county",
        "smeline/overflow-city",
        "smeline/after-hours",
        "smeline/voicemail-instructions",
        "smeline/voicemail-saved",
        "smeline/ticket-number-is",
        "smeline/callback-next-morning",
        "smeline/callback-offer",
        "smeline/callback-confirmed",
        "smeline/queue-hold",
        "smeline/survey",
        "smeline/survey-thanks",
        "smeline/survey-invalid",
        "smeline/escalate-expert",
        "smeline/escalate-city",
        "smeline/escalate-province",
        "smeline/escalate-no-answer",
        "smeline/goodbye",
        "smeline/technical-fallback",
        # Asterisk's own names that a zh channel must find in Chinese
        "queue-youarenext",
        "queue-thereare",
        "queue-callswaiting",
        "queue-holdtime",
        "queue-minute",
        "queue-minutes",
        "queue-seconds",
        "queue-thankyou",
        "queue-reporthold",
        "queue-less-than",
        "queue-periodic-announce",
        "queue-quantity1",
        "queue-quantity2",
        "conf-onlyperson",
        "conf-getpin",
        "conf-now-muted",
        "confbridge-conf-begin",
        "confbridge-join",
        "confbridge-leave",
        "vm-intro",
        "beep",
        "silence/1",
    ):
        assert name in PROMPTS, name
    assert (
        "您所在县区的窗口暂时无人接听，正在为您转接市中心窗口" in PROMPTS["smeline/overflow-city"]
    )
    assert "您的工单号是" in PROMPTS["smeline/ticket-number-is"]
    assert "为了提高服务质量，您的通话可能会被录音" in PROMPTS["smeline/recording-notice"]
    assert "按井号键结束" in PROMPTS["smeline/voicemail-instructions"]
    after_hours = PROMPTS["smeline/after-hours"]
    assert "下班时间" in after_hours and "工作日" in after_hours
    assert "八点半" in after_hours and "五点半" in after_hours
    assert "beep" in TONES and "silence/1" in SILENCES


def test_speech_hints_only_change_what_the_synthetic_voice_reads() -> None:
    assert "大埔" in PROMPTS["smeline/county-menu"]
    assert "da4 bu4" in speech_text("smeline/county-menu")
    assert "大埔" not in speech_text("smeline/county-menu")
    assert speech_text("smeline/welcome") == PROMPTS["smeline/welcome"]
    for word, pinyin in SPEECH_HINTS.items():
        assert all(CJK.match(ch) for ch in word), word
        assert any(word in text for text in PROMPTS.values()), word  # still needed
        assert re.fullmatch(r"[a-z]+[1-5]( [a-z]+[1-5])*", pinyin), (word, pinyin)


# --- audio ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def tools() -> None:
    """espeak-ng and sox are part of the machine's set-up: absent is a failure."""
    absent = [tool for tool in ("espeak-ng", "sox") if shutil.which(tool) is None]
    if absent:
        pytest.fail(f"{', '.join(absent)} missing: apt-get install espeak-ng sox", pytrace=False)


def read_wav(path: Path) -> tuple[wave._wave_params, array.array[int]]:
    with wave.open(str(path), "rb") as wav:
        params = wav.getparams()
        frames = wav.readframes(params.nframes)
    samples = array.array("h")
    samples.frombytes(frames)
    if sys.byteorder == "big":
        samples.byteswap()
    return params, samples


def assert_asterisk_format(path: Path) -> tuple[float, array.array[int]]:
    params, samples = read_wav(path)
    assert params.framerate == 8000, path
    assert params.nchannels == 1, path
    assert params.sampwidth == 2, path
    assert params.comptype == "NONE", path
    assert len(samples) == params.nframes
    return params.nframes / params.framerate, samples


def zero_crossings_per_second(samples: array.array[int]) -> float:
    crossings = sum(1 for a, b in zip(samples, samples[1:], strict=False) if (a < 0) != (b < 0))
    return crossings / (len(samples) / 8000)


HANDFUL = ["smeline/welcome", "digits/1", "beep", "silence/1"]


def test_generates_asterisk_ready_files(tmp_path: Path, tools: None) -> None:
    written = gen.generate(tmp_path, names=HANDFUL)
    assert sorted(written) == sorted(tmp_path / "zh" / f"{name}.wav" for name in HANDFUL)

    welcome, samples = assert_asterisk_format(tmp_path / "zh" / "smeline" / "welcome.wav")
    assert welcome > 2.0  # a full sentence
    assert max(abs(s) for s in samples) > 3000  # speech, not silence
    assert max(abs(s) for s in samples) < 32767  # normalised, not clipped

    one, samples = assert_asterisk_format(tmp_path / "zh" / "digits" / "1.wav")
    assert one > 0.2
    assert max(abs(s) for s in samples) > 3000

    beep, samples = assert_asterisk_format(tmp_path / "zh" / "beep.wav")
    assert beep == pytest.approx(0.3, abs=0.01)
    # a 1000 Hz sine crosses zero about 2000 times a second; speech would not be this regular
    assert zero_crossings_per_second(samples) == pytest.approx(2000, rel=0.05)

    silence, samples = assert_asterisk_format(tmp_path / "zh" / "silence" / "1.wav")
    assert silence == pytest.approx(1.0, abs=0.01)
    assert max(abs(s) for s in samples) == 0

    assert not [p for p in (tmp_path / "zh").rglob(".smeline-prompt-*")]  # no leftovers


def test_existing_files_are_kept_unless_forced(tmp_path: Path, tools: None) -> None:
    gen.generate(tmp_path, names=["smeline/welcome", "digits/1"])
    welcome = tmp_path / "zh" / "smeline" / "welcome.wav"
    recorded = b"RIFF a recorded voice, whatever it holds"
    welcome.write_bytes(recorded)
    os.utime(welcome, (1_000_000_000, 1_000_000_000))

    assert gen.generate(tmp_path, names=["smeline/welcome", "digits/1"]) == []
    assert welcome.read_bytes() == recorded
    assert welcome.stat().st_mtime == 1_000_000_000

    # a recording in another format Asterisk reads also counts: no .wav beside it
    (tmp_path / "zh" / "smeline" / "goodbye.ulaw").write_bytes(b"\xff" * 800)
    assert gen.generate(tmp_path, names=["smeline/goodbye"]) == []
    assert not (tmp_path / "zh" / "smeline" / "goodbye.wav").exists()

    assert gen.generate(tmp_path, names=["smeline/welcome"], force=True) == [welcome]
    assert welcome.read_bytes() != recorded
    assert_asterisk_format(welcome)


def test_missing_lists_what_has_no_file(tmp_path: Path, tools: None) -> None:
    assert gen.missing(tmp_path) == list(PROMPTS)
    gen.generate(tmp_path, names=HANDFUL)
    left = gen.missing(tmp_path)
    assert set(left) == set(PROMPTS) - set(HANDFUL)
    assert left == [name for name in PROMPTS if name not in HANDFUL]  # catalogue order


def test_unknown_name_is_refused(tmp_path: Path) -> None:
    with pytest.raises(KeyError, match="smeline/nope"):
        gen.generate(tmp_path, names=["smeline/welcome", "smeline/nope"])
    assert not (tmp_path / "zh").exists()


def test_missing_tools_name_the_debian_packages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(gen.PromptToolMissing) as caught:
        gen.generate(tmp_path / "sounds", names=["beep"])
    assert set(caught.value.missing_tools) == {"espeak-ng", "sox"}
    assert "apt-get install -y espeak-ng sox" in str(caught.value)
    assert gen.main(["--out", str(tmp_path / "sounds"), "--only", "beep"]) == 2
    assert "apt-get install -y espeak-ng sox" in capsys.readouterr().err


def test_text_with_shell_characters_is_one_argument(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tools: None
) -> None:
    # An argument list, never a shell: quotes, $() and ; reach espeak-ng as text.
    marker = tmp_path / "pwned"
    hostile = f'欢迎"; touch {marker}; echo "$(touch {marker})`touch {marker}`'
    monkeypatch.setattr(gen, "speech_text", lambda name: hostile)
    gen.generate(tmp_path, names=["smeline/welcome"])
    assert not marker.exists()
    assert_asterisk_format(tmp_path / "zh" / "smeline" / "welcome.wav")


def test_whole_catalogue_generates_quickly(tmp_path: Path, tools: None) -> None:
    started = time.monotonic()
    written = gen.generate(tmp_path)
    elapsed = time.monotonic() - started
    assert len(written) == len(PROMPTS)
    assert gen.missing(tmp_path) == []
    assert elapsed < 20, f"full generation took {elapsed:.1f} s"
    for name in PROMPTS:
        duration, samples = assert_asterisk_format(gen.sound_path(tmp_path, name))
        if name in SPEECH:
            assert duration > 0.2, name
            assert max(abs(s) for s in samples) > 3000, name


def test_command_line(tmp_path: Path, tools: None, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "sounds"
    assert gen.main(["--out", str(out), "--only", "digits/1", "beep"]) == 0
    assert (out / "zh" / "digits" / "1.wav").is_file()
    assert (out / "zh" / "beep.wav").is_file()
    assert "2 written" in capsys.readouterr().err
    assert gen.main(["--out", str(out), "--only", "digits/1"]) == 0
    assert "0 written, 1 kept" in capsys.readouterr().err
    assert gen.main(["--out", str(out), "--only", "digits/x"]) == 1
    assert "digits/x" in capsys.readouterr().err
