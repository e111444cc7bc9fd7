"""Every sound a caller can hear, as one line of zh-CN text each.

``PROMPTS`` maps a sound name, as Asterisk's Playback, Background, Queue and
STREAM FILE take it (a path relative to ``<sounds dir>/<language>/``, without
extension), to what the sound says. Inbound channels run with ``language=zh``,
so ``smeline/welcome`` is looked up as ``<sounds dir>/zh/smeline/welcome.*``.

Two groups:

* ``smeline/...``: smeline's own prompts;
* Asterisk's stock names (``digits/...``, ``queue-...``, ``conf-...``, ``beep``,
  ``silence/...``) that Asterisk itself plays from the dialplan, app_queue,
  ConfBridge and Record/SayDigits/SayNumber. They are here so that a zh channel
  finds a Chinese file instead of falling back to English or to nothing.

Tones and silences (``TONES``, ``SILENCES``) are synthesised by sox, not
spoken; their ``PROMPTS`` text only describes them for an operator.

The routing code maps menu digits with ``COUNTY_MENU`` and ``CATEGORY_MENU``;
the menu texts below read them out in the same order (a test checks it).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

# --- menus ----------------------------------------------------------------------

# (digit, GB/T 2260 county code), in the order the county menu reads them.
COUNTY_MENU: Final[tuple[tuple[str, str], ...]] = (
    ("1", "441402"),  # 梅江区
    ("2", "441403"),  # 梅县区
    ("3", "441481"),  # 兴宁市
    ("4", "441426"),  # 平远县
    ("5", "441427"),  # 蕉岭县
    ("6", "441422"),  # 大埔县
    ("7", "441423"),  # 丰顺县
    ("8", "441424"),  # 五华县
)

# (digit, service category code), in the order the category menu reads them.
CATEGORY_MENU: Final[tuple[tuple[str, str], ...]] = (
    ("1", "information"),  # 信息咨询
    ("2", "training"),  # 人员培训
    ("3", "technology"),  # 技术支持
    ("4", "startup"),  # 创业辅导
    ("5", "market"),  # 市场开拓
    ("6", "management"),  # 管理咨询
    ("7", "financing"),  # 融资担保
    ("8", "legal"),  # 法律维权
    ("9", "other"),  # 其他
)

# The digit that asks for a call back while waiting in a queue.
CALLBACK_DIGIT: Final = "9"


# --- smeline's own prompts ------------------------------------------------------

_SMELINE: dict[str, str] = {
    "smeline/welcome": "您好，欢迎致电梅州市中小企业公共服务平台。",
    "smeline/recording-notice": "为了提高服务质量，您的通话可能会被录音。",
    "smeline/county-menu": (
        "请选择您企业所在的县区："
        "梅江区请按1，梅县区请按2，兴宁市请按3，平远县请按4，"
        "蕉岭县请按5，大埔县请按6，丰顺县请按7，五华县请按8。"
    ),
    "smeline/category-menu": (
        "请选择服务类别："
        "信息咨询请按1，人员培训请按2，技术支持请按3，创业辅导请按4，市场开拓请按5，"
        "管理咨询请按6，融资担保请按7，法律维权请按8，其他请按9。"
    ),
    "smeline/invalid-choice": "您的输入有误，请重新选择。",
    "smeline/no-input": "没有收到您的按键，请重新选择。",
    "smeline/connecting-county": "正在为您转接所在县区的服务窗口，请稍候。",
    "smeline/overflow-city": "您所在县区的窗口暂时无人接听，正在为您转接市中心窗口，请稍候。",
    "smeline/after-hours": (
        "您好，现在是下班时间。本平台的服务时间为工作日上午八点半至十二点，下午两点半至五点半。"
    ),
    "smeline/voicemail-instructions": (
        "请在提示音后留言，说明您的姓名、联系电话和需要咨询的事项，留言完毕请按井号键结束。"
    ),
    "smeline/voicemail-saved": "您的留言已保存。",
    # Followed by the work-order reference read digit by digit (digits/0 ... digits/9).
    "smeline/ticket-number-is": "您的工单号是",
    "smeline/ticket-number-again": "再重复一遍，您的工单号是",
    "smeline/callback-next-morning": "我们将在下一个工作日上午给您回电。",
    "smeline/callback-offer": f"如不想继续等待，请按{CALLBACK_DIGIT}，我们将回电给您。",
    "smeline/callback-confirmed": "已为您登记回电，我们将尽快回电给您，您现在可以挂机了。",
    "smeline/queue-hold": "坐席正忙，请稍候。",
    "smeline/survey": "请对本次服务进行评价：满意请按1，一般请按2，不满意请按3。",
    "smeline/survey-thanks": "感谢您的评价。",
    "smeline/survey-invalid": "您的输入有误，请重新评价。",
    "smeline/escalate-expert": "正在为您转接专家，请稍候。",
    "smeline/escalate-city": "正在为您转接市中心窗口，请稍候。",
    "smeline/escalate-province": "正在为您转接省平台，请稍候。",
    "smeline/escalate-no-answer": "对方暂时无人接听，已为您回到原坐席。",
    "smeline/goodbye": "感谢您的来电，再见。",
    "smeline/technical-fallback": "系统繁忙，正在为您转接人工服务，请稍候。",
}


# --- Asterisk's stock names, in Chinese -----------------------------------------

# SayDigits / STREAM FILE of a reference and SayNumber. Chinese phone and
# reference numbers are read digit by digit with 1 as 幺 (yāo) and 0 as 零.
_DIGITS: dict[str, str] = {
    "digits/0": "零",
    "digits/1": "幺",
    "digits/2": "二",
    "digits/3": "三",
    "digits/4": "四",
    "digits/5": "五",
    "digits/6": "六",
    "digits/7": "七",
    "digits/8": "八",
    "digits/9": "九",
    "digits/star": "星",
    "digits/pound": "井",
    # SayDigits reads '-' as digits/minus; in a reference a dash is read 杠.
    "digits/minus": "杠",
}

# SayNumber in zh (main/say.c, ast_say_number_full_zh) plays digits/N for 0-9,
# digits/10 ... digits/90 for the tens, digits/hundred, digits/thousand,
# digits/wan (万) and digits/yi (亿). app_queue (position, hold time) and
# ConfBridge (participant count) count with it. Note that it shares digits/1
# with SayDigits, so a count with a 1 in it is read with 幺.
_NUMBERS: dict[str, str] = {
    "digits/10": "十",
    "digits/20": "二十",
    "digits/30": "三十",
    "digits/40": "四十",
    "digits/50": "五十",
    "digits/60": "六十",
    "digits/70": "七十",
    "digits/80": "八十",
    "digits/90": "九十",
    "digits/hundred": "百",
    "digits/thousand": "千",
    "digits/wan": "万",
    "digits/yi": "亿",
}

# app_queue's default sound names (queues.conf: queue-youarenext, queue-thereare,
# queue-callswaiting, queue-holdtime, queue-minute(s), queue-seconds,
# queue-thankyou, queue-reporthold, queue-less-than, periodic-announce,
# queue-quantity1/2). Position: thereare + number + callswaiting; hold time:
# holdtime + number + minute(s)/seconds; "more than" case: quantity1 + number +
# quantity2.
_QUEUE: dict[str, str] = {
    "queue-youarenext": "您是下一位，即将为您接通。",
    "queue-thereare": "您前面还有",
    "queue-callswaiting": "位来电在等候。",
    "queue-holdtime": "预计等候时间约为",
    "queue-minute": "分钟。",
    "queue-minutes": "分钟。",
    "queue-seconds": "秒。",
    "queue-less-than": "少于",
    "queue-thankyou": "感谢您的耐心等候。",
    # Played to the agent when reportholdtime=yes, before the caller's hold time.
    "queue-reporthold": "来电已等候",
    # Default of periodic-announce.
    "queue-periodic-announce": "坐席正忙，请继续等候，我们将按顺序为您接通。",
    "queue-quantity1": "您前面的来电多于",
    "queue-quantity2": "位，请耐心等候。",
}

# ConfBridge's default sounds (the sound_* bridge-profile options; defaults from
# apps/app_confbridge.c conf_get_sound). A conference that a zh caller is in
# (a three-way call with an expert, say) plays them in zh. The join/leave
# sounds are tones (see TONES).
# Not covered: conf-usermenu / conf-adminmenu, which belong to the sample DTMF
# menus only, and the binaural on/off sounds.
_CONFBRIDGE: dict[str, str] = {
    "conf-hasjoin": "加入了会议。",  # after a recorded name
    "conf-hasleft": "离开了会议。",  # after a recorded name
    "conf-kicked": "您已被移出会议。",
    "conf-muted": "您已静音。",
    "conf-unmuted": "您已取消静音。",
    "conf-onlyperson": "目前会议中只有您一人。",
    "conf-onlyone": "会议中还有一位其他参与者。",
    "conf-thereare": "会议中还有",  # + number + conf-otherinparty
    "conf-otherinparty": "位其他参与者。",
    "conf-placeintoconf": "现在将您接入会议。",  # deprecated upstream, harmless
    "conf-waitforleader": "请等候主持人加入会议。",
    "conf-leaderhasleft": "主持人已离开会议。",
    "conf-getpin": "请输入会议密码，按井号键结束。",
    "conf-invalidpin": "密码错误。",
    "conf-locked": "该会议已锁定，无法加入。",
    "conf-lockednow": "会议已锁定。",
    "conf-unlockednow": "会议已解锁。",
    "conf-errormenu": "无效的选项。",
    "conf-now-muted": "所有参与者已被静音。",  # sound_participants_muted
    "conf-now-unmuted": "所有参与者已取消静音。",  # sound_participants_unmuted
    "confbridge-conf-begin": "会议现在开始。",  # sound_begin
}

# Record/VoiceMail basics and a few generic stock names a dialplan commonly
# plays. Whether each is reached depends on the dialplan; a Chinese file is
# harmless where it is not.
_GENERAL: dict[str, str] = {
    "vm-intro": "请在提示音后留言，留言完毕请挂机或按井号键。",
    "vm-goodbye": "再见。",
    "vm-msgsaved": "您的留言已保存。",
    "auth-thankyou": "谢谢。",
    "goodbye": "再见。",
    "invalid": "输入无效，请重新输入。",
    "pbx-invalid": "您拨打的分机号无效，请重新输入。",
    "pbx-transfer": "请输入转接号码。",  # features.conf blind transfer
}


@dataclass(frozen=True)
class Tone:
    """A tone made of (seconds, hertz) steps, played one after the other."""

    steps: tuple[tuple[float, float], ...]
    volume: float = 0.5


# Tones synthesised by sox, not speech.
TONES: Final[MappingProxyType[str, Tone]] = MappingProxyType(
    {
        # Record, VoiceMail and features (courtesytone, xfersound) play "beep".
        "beep": Tone(((0.3, 1000.0),)),
        # features.conf xferfailsound.
        "beeperr": Tone(((0.2, 480.0), (0.2, 400.0))),
        # ConfBridge sound_join / sound_leave: rising / falling two-step tones.
        "confbridge-join": Tone(((0.12, 660.0), (0.12, 880.0))),
        "confbridge-leave": Tone(((0.12, 880.0), (0.12, 660.0))),
    }
)

# Silences (seconds), as Asterisk's stock silence/N used for pauses and Background().
SILENCES: Final[MappingProxyType[str, float]] = MappingProxyType(
    {f"silence/{n}": float(n) for n in range(1, 11)}
)

_DESCRIBED: dict[str, str] = {
    **{
        name: "(tone: " + ", ".join(f"{hz:g} Hz {sec:g} s" for sec, hz in tone.steps) + ")"
        for name, tone in TONES.items()
    },
    **{name: f"(silence: {seconds:g} s)" for name, seconds in SILENCES.items()},
}

# Every sound name -> its zh-CN text (a description for tones and silences).
PROMPTS: Final[MappingProxyType[str, str]] = MappingProxyType(
    {
        **_SMELINE,
        **_DIGITS,
        **_NUMBERS,
        **_QUEUE,
        **_CONFBRIDGE,
        **_GENERAL,
        **_DESCRIBED,
    }
)

# Names that are spoken (synthesised from text).
SPEECH: Final[tuple[str, ...]] = tuple(
    name for name in PROMPTS if name not in TONES and name not in SILENCES
)

# Pronunciation fixes for the synthetic voice only: espeak-ng's Mandarin reads a
# few polyphonic characters wrongly, so these words are sent as tone-numbered
# pinyin. A recorded voice reads the Chinese text above.
SPEECH_HINTS: Final[MappingProxyType[str, str]] = MappingProxyType(
    {
        "大埔": "da4 bu4",
        "兴宁": "xing1 ning2",
        "重新": "chong2 xin1",
        "重复": "chong2 fu4",
    }
)


def speech_text(name: str) -> str:
    """The text handed to the synthesiser for ``name`` (``SPEECH_HINTS`` applied)."""
    text = PROMPTS[name]
    for word, pinyin in SPEECH_HINTS.items():
        text = text.replace(word, f" {pinyin} ")
    return text
