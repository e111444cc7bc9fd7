"""Static checks of the shipped Asterisk configuration and its renderer.

No Asterisk runs here: these tests parse ``dialplan/*.conf`` the way Asterisk's
config reader does (sections, templates, ``#include``) and check what can be
checked without one: every jump lands somewhere, every prompt exists in zh,
the agents' context cannot reach the trunk, the inbound path has its
fallbacks, the rendered files cannot be injected into, and the AMI filter
lets through what smeline consumes.
"""

from __future__ import annotations

import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from smeline.prompts.catalogue import CALLBACK_DIGIT, PROMPTS
from smeline.reference.data import WINDOWS
from smeline.telephony.asterisk_config import (
    AGENTS_FILE,
    GLOBALS_FILE,
    MANAGER_FILE,
    QUEUES_FILE,
    STATIC_FILES,
    AgentPhone,
    DialplanSettings,
    ManagerUser,
    QueueOptions,
    WindowQueue,
    dialplan_dir,
    render_agent_endpoints,
    render_all,
    render_globals,
    render_manager_user,
    render_queues,
    write_all,
)
from smeline.telephony.calls import TRACKED_VARIABLES, CallTracker

DIALPLAN = dialplan_dir()
WINDOW_QUEUES = [WindowQueue(code, name) for code, name, _county in WINDOWS]
AGENT = AgentPhone(endpoint="agent1", secret="Webpass-123456", display_name="王小明")
SETTINGS = DialplanSettings(hotline="07532345678")
MANAGER = ManagerUser(secret="Ami-secret-0001")


# --------------------------------------------------------------------------- a config reader


@dataclass
class Section:
    name: str
    template: bool
    options: list[tuple[str, str]] = field(default_factory=list)

    def get(self, key: str) -> str | None:
        values = self.all(key)
        return values[-1] if values else None

    def all(self, key: str) -> list[str]:
        return [v for k, v in self.options if k == key]


def _strip_comment(line: str) -> str:
    out = []
    escaped = False
    for ch in line:
        if ch == ";" and not escaped:
            break
        escaped = ch == "\\"
        out.append(ch)
    return "".join(out).strip()


def read_config(name: str, files: dict[str, str]) -> list[Section]:
    """Sections of an Asterisk config file, includes and templates resolved."""
    sections: list[Section] = []
    current: list[Section | None] = [None]

    def feed(text: str) -> None:
        for raw in text.splitlines():
            line = _strip_comment(raw)
            if not line:
                continue
            if line.startswith("#include") or line.startswith("#tryinclude"):
                included = line.split(None, 1)[1].strip().strip('"')
                if included in files:
                    feed(files[included])
                else:
                    assert line.startswith("#tryinclude"), f"{name}: missing {included}"
                continue
            header = re.fullmatch(r"\[([^\]]+)\](?:\(([^)]*)\))?", line)
            if header:
                section = Section(header.group(1), template=False)
                for parent in (header.group(2) or "").split(","):
                    parent = parent.strip()
                    if parent == "!":
                        section.template = True
                    elif parent:
                        found = [s for s in sections if s.name == parent and s.template]
                        assert found, f"{name}: template {parent!r} used before it is defined"
                        section.options.extend(found[0].options)
                sections.append(section)
                current[0] = section
                continue
            key, sep, value = line.partition("=")
            assert sep, f"{name}: cannot read line {raw!r}"
            section_now = current[0]
            assert section_now is not None, f"{name}: option outside a section: {raw!r}"
            section_now.options.append((key.strip(), value.lstrip(">").strip()))

    feed(files[name])
    return sections


def sections_named(sections: list[Section], name: str) -> list[Section]:
    return [s for s in sections if s.name == name and not s.template]


def one_section(sections: list[Section], name: str, **where: str) -> Section:
    found = [
        s for s in sections_named(sections, name) if all(s.get(k) == v for k, v in where.items())
    ]
    assert len(found) == 1, f"expected one [{name}] {where}, found {len(found)}"
    return found[0]


@pytest.fixture(scope="module")
def files() -> dict[str, str]:
    return render_all(windows=WINDOW_QUEUES, agents=[AGENT], settings=SETTINGS, manager=MANAGER)


# --------------------------------------------------------------------------- a dialplan reader


@dataclass(frozen=True)
class Step:
    context: str
    exten: str
    priority: int
    label: str | None
    app: str
    args: str


@dataclass
class Dialplan:
    contexts: dict[str, dict[str, list[Step]]]
    includes: dict[str, list[str]]

    def steps(self, context: str) -> Iterator[Step]:
        for steps in self.contexts[context].values():
            yield from steps


def parse_dialplan(text: str) -> Dialplan:
    contexts: dict[str, dict[str, list[Step]]] = {}
    includes: dict[str, list[str]] = {}
    context: str | None = None
    exten: str | None = None
    priority = 0
    for raw in text.splitlines():
        line = _strip_comment(raw)
        if not line or line.startswith("#"):
            continue
        header = re.fullmatch(r"\[([^\]]+)\]", line)
        if header:
            context = header.group(1)
            if context not in ("general", "globals"):
                contexts.setdefault(context, {})
                includes.setdefault(context, [])
            continue
        if context in (None, "general", "globals"):
            continue
        assert context is not None
        kind, sep, rest = line.partition("=>")
        assert sep, f"cannot read dialplan line {raw!r}"
        kind, rest = kind.strip(), rest.strip()
        if kind == "include":
            includes[context].append(rest)
            continue
        if kind == "exten":
            exten, prio, body = rest.split(",", 2)
            assert prio.split("(")[0] == "1", f"{exten}@{context} must start at priority 1"
            priority = 1
        else:
            assert kind == "same" and exten is not None, f"cannot read {raw!r}"
            prio, body = rest.split(",", 1)
            assert prio.split("(")[0] == "n", f"same => must use n: {raw!r}"
            priority += 1
        label_match = re.search(r"\((\w+)\)", prio)
        app, _, args = body.partition("(")
        assert args.endswith(")"), f"unbalanced application call: {raw!r}"
        contexts[context].setdefault(exten, []).append(
            Step(
                context,
                exten,
                priority,
                label_match.group(1) if label_match else None,
                app.strip(),
                args[:-1],
            )
        )
    return Dialplan(contexts, includes)


@pytest.fixture(scope="module")
def dialplan() -> Dialplan:
    return parse_dialplan((DIALPLAN / "extensions.conf").read_text(encoding="utf-8"))


def split_top(text: str, sep: str) -> list[str]:
    """Split on ``sep`` outside (), [] and {}."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == sep and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


def condition_branches(args: str) -> tuple[str, list[str]]:
    """``$[cond]?a:b`` → (cond, [a, b])."""
    assert args.startswith("$["), f"condition must be an expression: {args!r}"
    depth = 0
    for i, ch in enumerate(args):
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
            if depth == 0:
                rest = args[i + 1 :]
                assert rest.startswith("?"), f"expected '?' after the condition: {args!r}"
                return args[: i + 1], [b for b in split_top(rest[1:], ":") if b]
    raise AssertionError(f"unbalanced condition: {args!r}")


def inner_calls(step: Step) -> list[tuple[str, str]]:
    """(app, args) of the step, and of the applications ExecIf runs."""
    if step.app != "ExecIf":
        return [(step.app, step.args)]
    _cond, branches = condition_branches(step.args)
    calls = []
    for branch in branches:
        app, _, args = branch.partition("(")
        calls.append((app, args[:-1]))
    return calls


@dataclass(frozen=True)
class Target:
    context: str
    exten: str
    priority: str


def jump_targets(step: Step) -> list[Target]:
    specs: list[str] = []
    for app, args in inner_calls(step):
        if app in ("Goto", "Gosub"):
            specs.append(args)
        elif app in ("GotoIf", "GosubIf"):
            specs.extend(condition_branches(args)[1])
    targets = []
    for spec in specs:
        parts = split_top(spec, ",")
        if len(parts) == 1:
            context, exten, priority = step.context, step.exten, parts[0]
        elif len(parts) == 2:
            context, (exten, priority) = step.context, parts
        else:
            assert len(parts) == 3, f"cannot read jump {spec!r}"
            context, exten, priority = parts
        targets.append(Target(context.strip(), exten.strip(), priority.split("(")[0].strip()))
    return targets


def dial_contexts(step: Step) -> list[str]:
    """Contexts a Dial/Queue member string reaches through Local channels."""
    return re.findall(r"Local/[^@,&]+@([A-Za-z0-9_-]+)", step.args) if step.app == "Dial" else []


def reachable(dialplan: Dialplan, start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        context = todo.pop()
        if context in seen:
            continue
        seen.add(context)
        todo.extend(dialplan.includes.get(context, []))
        for step in dialplan.steps(context):
            todo.extend(t.context for t in jump_targets(step))
            todo.extend(dial_contexts(step))
    return seen


def dials_trunk(dialplan: Dialplan, context: str) -> bool:
    return any(
        app == "Dial" and "SMELINE_TRUNK" in args
        for step in dialplan.steps(context)
        for app, args in inner_calls(step)
    )


def flow(dialplan: Dialplan, context: str, exten: str) -> list[Step]:
    return dialplan.contexts[context][exten]


# --------------------------------------------------------------------------- dialplan: structure


def test_every_jump_lands_on_an_existing_context_extension_and_priority(
    dialplan: Dialplan,
) -> None:
    jumps = 0
    for context in dialplan.contexts:
        for step in dialplan.steps(context):
            for target in jump_targets(step):
                jumps += 1
                assert "$" not in target.context, f"{step}: context built from a variable"
                assert target.context in dialplan.contexts, f"{step}: no [{target.context}]"
                extens = dialplan.contexts[target.context]
                assert target.exten in extens, f"{step}: no {target.exten}@{target.context}"
                steps = extens[target.exten]
                if target.priority.isdigit():
                    assert int(target.priority) <= len(steps), f"{step}: no such priority"
                else:
                    labels = {s.label for s in steps}
                    assert target.priority in labels, f"{step}: no label {target.priority}"
    assert jumps > 30  # the reader really found the jumps
    for context, included in dialplan.includes.items():
        for name in included:
            assert name in dialplan.contexts, f"[{context}] includes missing [{name}]"


def test_labels_are_unique_within_an_extension(dialplan: Dialplan) -> None:
    for context, extens in dialplan.contexts.items():
        for exten, steps in extens.items():
            labels = [s.label for s in steps if s.label]
            assert len(labels) == len(set(labels)), f"{exten}@{context}: duplicate labels"


def sounds_played(dialplan: Dialplan) -> Iterator[tuple[Step, str]]:
    for context in dialplan.contexts:
        for step in dialplan.steps(context):
            for app, args in inner_calls(step):
                if app in ("Playback", "Background", "ControlPlayback"):
                    for name in split_top(args, ",")[0].split("&"):
                        yield step, name.strip()
                elif app == "Dial":
                    for option in re.findall(r"\bA\(([^)]*)\)", args):
                        yield step, option.strip()


def test_every_prompt_the_dialplan_plays_exists_in_the_catalogue(dialplan: Dialplan) -> None:
    played = list(sounds_played(dialplan))
    assert len(played) > 20
    for step, name in played:
        if name.startswith("${"):
            # The one dynamic prompt: route's announcement, gated by a REGEX check.
            assert name == "${SMELINE_ANNOUNCE}", f"{step}: unexpected dynamic prompt"
            continue
        assert name in PROMPTS, f"{step}: {name!r} is not in smeline.prompts.catalogue"


def test_the_dynamic_announcement_is_validated_before_it_is_played(dialplan: Dialplan) -> None:
    steps = flow(dialplan, "smeline-queue", "s")
    play = next(i for i, s in enumerate(steps) if s.args == "${SMELINE_ANNOUNCE}")
    assert steps[play - 1].app == "GotoIf" and "Q_ANNOUNCE_OK" in steps[play - 1].args
    assert 'REGEX("^smeline/[a-z0-9-]+$" ${SMELINE_ANNOUNCE})' in steps[play - 2].args


def test_unvalidated_values_never_sit_inside_execif(dialplan: Dialplan) -> None:
    # ExecIf splits on '?' and ':' after substitution: a raw SMELINE_* value
    # inside it could smuggle in an application.
    for context in dialplan.contexts:
        for step in dialplan.steps(context):
            if step.app == "ExecIf":
                raw = re.findall(r"\$\{(SMELINE_[A-Z_]+)", step.args)
                assert not raw, f"{step}: {raw} inside ExecIf"


# --------------------------------------------------------------------------- dialplan: paths


def test_inbound_sets_language_and_defaults_before_the_first_agi(dialplan: Dialplan) -> None:
    for entry in ("_X.", "_+X.", "s"):
        (step,) = flow(dialplan, "smeline-inbound", entry)
        assert jump_targets(step) == [Target("smeline-inbound", "call", "1")]
    steps = flow(dialplan, "smeline-inbound", "call")
    agi = next(i for i, s in enumerate(steps) if s.app == "AGI")
    before = [(s.app, s.args) for s in steps[:agi]]
    assert ("Set", "CHANNEL(language)=zh") in before
    assert ("Set", "SMELINE_ACTION=queue") in before
    assert ("Set", "SMELINE_QUEUE=city") in before
    assert steps[agi].args == "agi://${SMELINE_AGI}/route"
    assert "AGISTATUS" in steps[agi + 1].args


def test_inbound_falls_back_to_the_city_queue_and_whitelists_actions(dialplan: Dialplan) -> None:
    steps = flow(dialplan, "smeline-inbound", "call")
    labels = {s.label: i for i, s in enumerate(steps) if s.label}
    fallback = steps[labels["fallback"] :]
    assert fallback[0].args == "smeline/technical-fallback"
    assert ("Set", "SMELINE_QUEUE=city") in [(s.app, s.args) for s in fallback]
    assert any(Target("smeline-queue", "s", "1") in jump_targets(s) for s in fallback[:6])
    routed = steps[labels["routed"] :]
    whitelist = [s for s in routed if s.app == "GotoIf" and "SMELINE_ACTION" in s.args]
    assert {condition_branches(s.args)[0] for s in whitelist} == {
        '$["${SMELINE_ACTION}" = "queue"]',
        '$["${SMELINE_ACTION}" = "afterhours"]',
    }
    # Anything else: back to the fallback (the city queue).
    after = routed[len(whitelist)]
    assert after.app == "Goto" and after.args == "fallback"


def test_pjsip_trunk_template_is_zh_and_lands_in_the_inbound_context(
    files: dict[str, str],
) -> None:
    pjsip = read_config("pjsip.conf", files)
    trunk = next(s for s in pjsip if s.name == "smeline-trunk-endpoint")
    assert trunk.template
    assert trunk.get("context") == "smeline-inbound"
    assert trunk.get("language") == "zh"
    assert trunk.get("allow") == "!all,alaw,ulaw"
    assert trunk.get("direct_media") == "no"


def test_queue_step_records_announces_and_continues_to_the_survey(dialplan: Dialplan) -> None:
    setup = flow(dialplan, "smeline-queue", "s")
    calls = [(s.app, s.args) for s in setup]
    notice = calls.index(("Playback", "smeline/recording-notice"))
    recording = next(i for i, (a, x) in enumerate(calls) if x.startswith("SMELINE_RECORDING="))
    mixmonitor = calls.index(("MixMonitor", "${SMELINE_RECORDING},b"))
    assert notice < recording < mixmonitor
    assert calls[recording][1].endswith("-${UNIQUEID}.wav")
    assert any(a == "Set" and x.startswith("QUEUE_PRIO=${FILTER(0-9,") for a, x in calls)
    wait = flow(dialplan, "smeline-queue", "wait")
    queue = wait[0]
    assert queue.app == "Queue" and split_top(queue.args, ",")[1] == "c"
    assert Target("smeline-survey", "s", "1") in jump_targets(wait[1])
    assert 'QUEUESTATUS}" = "CONTINUE"' in wait[1].args
    # Overflow once (the overflow variable is emptied), then a message.
    assert ("Set", "Q_OVERFLOW=") in [(s.app, s.args) for s in wait]
    assert ("Playback", "smeline/overflow-city") in [(s.app, s.args) for s in wait]
    assert Target("smeline-afterhours", "busy", "1") in jump_targets(wait[-1])


def test_every_queue_call_has_a_timeout(dialplan: Dialplan) -> None:
    queues = [s for c in dialplan.contexts for s in dialplan.steps(c) if s.app == "Queue"]
    assert len(queues) == 2
    for step in queues:
        timeout = split_top(step.args, ",")[4]
        assert timeout.startswith("${Q_WAIT}"), f"{step}: a queue without a bounded wait"


def test_callback_digit_is_the_only_way_out_of_the_queue(dialplan: Dialplan) -> None:
    assert set(dialplan.contexts["smeline-queue-exit"]) == {CALLBACK_DIGIT}
    calls = [(s.app, s.args) for s in flow(dialplan, "smeline-queue-exit", CALLBACK_DIGIT)]
    outcome = calls.index(("Set", "SMELINE_OUTCOME=callback"))
    agi = calls.index(("AGI", "agi://${SMELINE_AGI}/callback"))
    say = next(i for i, (a, _x) in enumerate(calls) if a == "SayDigits")
    assert outcome < agi < say
    assert calls[say + 1 : say + 3] == [("Playback", "smeline/goodbye"), ("Hangup", "")]


def test_afterhours_records_then_files_and_reads_back_the_ticket(dialplan: Dialplan) -> None:
    message = flow(dialplan, "smeline-afterhours", "message")
    calls = [(s.app, s.args) for s in message]
    record = next(i for i, (a, _x) in enumerate(calls) if a == "Record")
    assert calls[record][1] == "${SMELINE_MESSAGE_DIR}/msg-${UNIQUEID}.wav,3,120,k"
    after = calls[record:]
    assert ("Set", "SMELINE_MESSAGE=${RECORDED_FILE}.wav") in after
    assert ("Set", "SMELINE_OUTCOME=voicemail") in after
    agi = after.index(("AGI", "agi://${SMELINE_AGI}/voicemail"))
    assert after.index(("Set", "SMELINE_OUTCOME=voicemail")) < agi
    assert [a for a, _x in after].count("SayDigits") == 2
    assert ("Playback", "smeline/callback-next-morning") in after
    s = [(x.app, x.args) for x in flow(dialplan, "smeline-afterhours", "s")]
    assert s.index(("Playback", "smeline/after-hours")) < len(s)


def test_survey_runs_in_the_normal_flow_never_from_h(dialplan: Dialplan) -> None:
    calls = [(s.app, s.args) for s in flow(dialplan, "smeline-survey", "s")]
    assert calls.index(("Set", "SMELINE_SURVEY=offered")) < calls.index(
        ("AGI", "agi://${SMELINE_AGI}/survey")
    )
    for context, extens in dialplan.contexts.items():
        for step in extens.get("h", []):
            assert "/survey" not in step.args and "/route" not in step.args, (
                f"[{context}] h runs an AGI that needs a live channel"
            )


def test_every_agi_goes_to_smeline_with_a_known_route(dialplan: Dialplan) -> None:
    routes = set()
    for context in dialplan.contexts:
        for step in dialplan.steps(context):
            if step.app in ("AGI", "EAGI", "DeadAGI"):
                match = re.fullmatch(r"agi://\$\{SMELINE_AGI\}/([a-z]+)", step.args)
                assert match, f"{step}: AGI must be agi://${{SMELINE_AGI}}/<route>"
                routes.add(match.group(1))
    assert routes == {"route", "callback", "voicemail", "survey"}


def test_conference_roles_are_whitelisted_with_the_right_profiles(
    dialplan: Dialplan, files: dict[str, str]
) -> None:
    steps = flow(dialplan, "smeline-conference", "s")
    roles = re.findall(r'SMELINE_CONF_ROLE\}" = "(\w+)"', " ".join(s.args for s in steps))
    assert set(roles) == {"caller", "agent", "party", "province", "consult"}
    bridges = [s for s in steps if s.app == "ConfBridge"]
    confbridge = read_config("confbridge.conf", files)
    names = {s.name for s in confbridge}
    for step in bridges:
        room, bridge, user = split_top(step.args, ",")
        assert room == "${CONF_ROOM}" and bridge in names and user in names
    by_label = {s.label: s for s in steps if s.label}
    assert split_top(by_label["caller"].args, ",")[2] == "smeline-caller"
    assert split_top(by_label["agent"].args, ",")[2] == "smeline-party"
    # A far leg joins only while a marked user (the caller) is in the room.
    assert "CONFBRIDGE_INFO(marked," in by_label["party"].args
    # The agent briefing a far leg in private is marked too (the far leg ends with them).
    assert split_top(by_label["consult"].args, ",")[2] == "smeline-consult"
    consult = {s.name: s for s in confbridge}["smeline-consult"]
    assert consult.get("marked") == "yes" and consult.get("type") == "user"


def test_dial_targets_use_local_scheme_and_the_trunk_from_globals(dialplan: Dialplan) -> None:
    targets = dialplan.contexts["smeline-dial-target"]
    assert {"_q-.", "_e-X.", "_p-X.", "trunk"} <= set(targets)
    dial = [s for s in dialplan.steps("smeline-trunk-dial") if s.app == "Dial"]
    assert dial and all(s.args.startswith("PJSIP/${number}@${SMELINE_TRUNK},") for s in dial)
    calls = [(s.app, s.args) for s in dialplan.steps("smeline-trunk-dial")]
    assert ("Set", "CALLERID(num)=${SMELINE_HOTLINE}") in calls
    assert calls.index(("Set", "CALLERID(num)=${SMELINE_HOTLINE}")) < calls.index(
        ("Dial", dial[0].args)
    )


def test_only_the_trunk_subroutine_dials_the_trunk(dialplan: Dialplan) -> None:
    assert [c for c in dialplan.contexts if dials_trunk(dialplan, c)] == ["smeline-trunk-dial"]


def test_agents_context_cannot_reach_the_trunk(dialplan: Dialplan) -> None:
    reach = reachable(dialplan, "smeline-agents")
    assert reach == {"smeline-agents"}
    assert not any(dials_trunk(dialplan, c) for c in reach)
    for step in dialplan.steps("smeline-agents"):
        assert step.app not in ("Dial", "Queue", "Originate", "ConfBridge", "AGI"), step
    # The check is not vacuous: the outbound paths do reach the trunk.
    for start in ("smeline-outbound", "smeline-dial-target"):
        assert any(dials_trunk(dialplan, c) for c in reachable(dialplan, start)), start


def test_reachability_follows_includes_and_local_channels() -> None:
    hostile = parse_dialplan(
        "[a]\ninclude => b\n[b]\nexten => 1,1,Dial(Local/x@c/n)\n"
        "[c]\nexten => x,1,Dial(PJSIP/${N}@${SMELINE_TRUNK})\n"
    )
    reach = reachable(hostile, "a")
    assert reach == {"a", "b", "c"}
    assert dials_trunk(hostile, "c")


def test_dialplan_reads_only_variables_it_sets_or_that_are_rendered(
    dialplan: Dialplan,
) -> None:
    text = (DIALPLAN / "extensions.conf").read_text(encoding="utf-8")
    read = set(re.findall(r"\$\{(SMELINE_[A-Z_]+)\}", text))
    set_here = set(re.findall(r"Set\((SMELINE_[A-Z_]+)=", text))
    rendered = set(re.findall(r"^(SMELINE_[A-Z_]+) =", render_globals(SETTINGS), re.M))
    # Set by smeline: the AGI (route's packed decision, the ticket) or AMI Setvar.
    from_smeline = {"SMELINE_TICKET", "SMELINE_CONF_ROLE", "SMELINE_DECISION"}
    assert read - set_here - rendered - from_smeline == set()


def test_the_ami_side_gets_its_variables_through_set(dialplan: Dialplan) -> None:
    text = (DIALPLAN / "extensions.conf").read_text(encoding="utf-8")
    for expected in (
        "Set(SMELINE_RECORDING=",
        "Set(SMELINE_SURVEY=offered)",
        "Set(SMELINE_OUTCOME=voicemail)",
        "Set(SMELINE_OUTCOME=callback)",
        "Set(SMELINE_DIRECTION=outbound)",
    ):
        assert expected in text
    # Helper variables stay out of the SMELINE_ namespace the AMI filter passes.
    helpers = set(re.findall(r"Set\(([A-Z_]+)=", text)) - {
        n for n in re.findall(r"Set\((SMELINE_[A-Z_]+)=", text)
    }
    assert helpers and not any(h.startswith("SMELINE_") for h in helpers)


# --------------------------------------------------------------------------- queues


def test_rendered_queues_one_section_per_window(files: dict[str, str]) -> None:
    sections = read_config("queues.conf", files)
    general = one_section(sections, "general")
    assert general.get("persistentmembers") == "no"
    queues = [s for s in sections if s.name != "general"]
    assert [s.name for s in queues] == [code for code, _name, _county in WINDOWS]
    for queue in queues:
        assert queue.get("strategy") == "leastrecent"
        assert queue.get("ringinuse") == "no"
        assert queue.get("context") == "smeline-queue-exit"
        assert queue.get("announce-position") == "no"
        assert queue.get("musicclass") == "default"
        assert queue.all("member") == []
        assert "unavailable" in (queue.get("joinempty") or "").split(",")
        assert "unavailable" in (queue.get("leavewhenempty") or "").split(",")
        for key in ("setinterfacevar", "setqueuevar", "setqueueentryvar"):
            assert queue.get(key) == "yes"
        for key, value in queue.options:
            if "announce" in key and not key.endswith("frequency") and value not in ("no", "yes"):
                for name in value.split(","):
                    assert name in PROMPTS, f"[{queue.name}] {key}: {name!r} not in catalogue"
    assert not re.search(r"^\s*member\s*=", files[QUEUES_FILE], re.M)


def test_queue_options_are_configurable_and_checked() -> None:
    text = render_queues(
        [WindowQueue("city", "市中心窗口")], QueueOptions(strategy="rrmemory", wrapup_seconds=45)
    )
    assert "strategy = rrmemory" in text and "wrapuptime = 45" in text
    for bad in (
        QueueOptions(strategy="bogus"),
        QueueOptions(ring_timeout=0),
        QueueOptions(periodic_announce=("smeline/not-a-prompt",)),
        QueueOptions(join_empty=()),
        QueueOptions(leave_when_empty=("sometimes",)),
        QueueOptions(autopause="maybe"),
    ):
        with pytest.raises(ValueError):
            render_queues([WindowQueue("city", "市中心窗口")], bad)


@pytest.mark.parametrize(
    "code",
    ["city\n[evil]", "a;b", "[x]", "Meijiang", "", "general", "x" * 40, "city,evil", "c$y"],
)
def test_hostile_window_code_is_refused(code: str) -> None:
    with pytest.raises(ValueError):
        render_queues([WindowQueue(code, "窗口")])


@pytest.mark.parametrize("name", ["梅江\n[evil]", "a;b", "x]y", "${SHELL(id)}", "\x00"])
def test_hostile_window_name_is_refused(name: str) -> None:
    with pytest.raises(ValueError):
        render_queues([WindowQueue("meijiang", name)])


def test_repeated_window_is_refused() -> None:
    with pytest.raises(ValueError):
        render_queues([WindowQueue("city", "a"), WindowQueue("city", "b")])


# --------------------------------------------------------------------------- agents


def effective(files: dict[str, str], name: str, type_: str) -> Section:
    return one_section(read_config("pjsip.conf", files), name, type=type_)


def test_agent_endpoint_gets_the_recorded_webrtc_settings(files: dict[str, str]) -> None:
    endpoint = effective(files, "agent1", "endpoint")
    assert endpoint.get("webrtc") == "yes"
    assert endpoint.get("allow") == "!all,alaw,ulaw"
    assert endpoint.get("dtmf_mode") == "rfc4733"
    assert endpoint.get("context") == "smeline-agents"
    assert endpoint.get("direct_media") == "no"
    assert endpoint.get("identify_by") == "username"
    assert endpoint.get("dtls_auto_generate_cert") == "yes"
    assert endpoint.get("auth") == "agent1-auth" and endpoint.get("aors") == "agent1"
    assert endpoint.get("callerid") == '"王小明" <agent1>'
    aor = effective(files, "agent1", "aor")
    assert aor.get("max_contacts") == "1"
    assert aor.get("remove_existing") == "yes"
    auth = effective(files, "agent1-auth", "auth")
    assert auth.get("username") == "agent1" and auth.get("password") == "Webpass-123456"
    rendered = files[AGENTS_FILE]
    assert "[agent1](smeline-agent-endpoint)" in rendered
    assert "[agent1](smeline-agent-aor)" in rendered


@pytest.mark.parametrize(
    "agent",
    [
        AgentPhone("agent1", "Webpass-123456\n[evil]", "x"),
        AgentPhone("agent1", "Webpass;123456", "x"),
        AgentPhone("agent1", "Web[pass-123456", "x"),
        AgentPhone("agent1", "${SHELL(id)}xxxx", "x"),
        AgentPhone("agent1", "short", "x"),
        AgentPhone("agent1", "has space 123456", "x"),
        AgentPhone("agent1\n[evil]", "Webpass-123456", "x"),
        AgentPhone("agent;1", "Webpass-123456", "x"),
        AgentPhone("anonymous", "Webpass-123456", "x"),
        AgentPhone("transport-wss", "Webpass-123456", "x"),
        AgentPhone("agent1", "Webpass-123456", 'Wang" <evil>'),
        AgentPhone("agent1", "Webpass-123456", "王\n[evil]"),
        AgentPhone("agent1", "Webpass-123456", "a;b"),
    ],
)
def test_hostile_agent_is_refused(agent: AgentPhone) -> None:
    with pytest.raises(ValueError):
        render_agent_endpoints([agent])


def test_repeated_or_trunk_named_agent_is_refused() -> None:
    with pytest.raises(ValueError):
        render_agent_endpoints([AGENT, AGENT])
    with pytest.raises(ValueError):
        render_all(
            windows=WINDOW_QUEUES,
            agents=[AgentPhone("carrier", "Webpass-123456", "")],
            settings=SETTINGS,
            manager=MANAGER,
        )


# --------------------------------------------------------------------------- globals, manager


def test_globals_render_and_refuse_hostile_values() -> None:
    text = render_globals(SETTINGS)
    assert text.count("[globals]") == 1
    assert "SMELINE_AGI = 127.0.0.1:4573" in text
    assert "SMELINE_HOTLINE = 07532345678" in text
    for bad in (
        DialplanSettings(hotline="0753\n[evil]"),
        DialplanSettings(hotline="${SHELL(id)}"),
        DialplanSettings(hotline="07532345678", agi="host;x:4573"),
        DialplanSettings(hotline="07532345678", trunk="carrier,evil"),
        DialplanSettings(hotline="07532345678", trunk="anonymous"),
        DialplanSettings(hotline="07532345678", recording_dir="relative/dir"),
        DialplanSettings(hotline="07532345678", recording_dir="/var/../etc"),
        DialplanSettings(hotline="07532345678", message_dir="/tmp/a b"),
        DialplanSettings(hotline="07532345678", dial_timeout=0),
    ):
        with pytest.raises(ValueError):
            render_globals(bad)


def test_manager_conf_filters_events_and_limits_classes(files: dict[str, str]) -> None:
    sections = read_config("manager.conf", files)
    general = one_section(sections, "general")
    assert general.get("timestampevents") == "yes"
    assert general.get("bindaddr") == "127.0.0.1"
    user = one_section(sections, "smeline")
    assert user.get("secret") == "Ami-secret-0001"
    read = set((user.get("read") or "").split(","))
    write = set((user.get("write") or "").split(","))
    assert {"call", "agent", "dialplan"} <= read and {"originate", "agent", "call"} <= write
    assert "command" not in read | write and "all" not in read | write
    assert "system" not in write  # Originate Application=System, ${SHELL()} stay refused
    filters = [(k, v) for k, v in user.options if k.startswith("eventfilter")]
    assert filters
    names = set()
    for key, value in filters:
        criteria = dict(re.findall(r"(\w+)\(([^()]*)\)", key[len("eventfilter") :]))
        assert criteria.get("action", "include") == "include"
        names.add(criteria["name"])
        if criteria["name"] == "VarSet":
            # Never all VarSets: only smeline's variables.
            assert criteria.get("header") == "Variable"
            assert (criteria.get("method"), value) in {
                ("starts_with", "SMELINE_"),
                ("exact", "MIXMONITOR_FILENAME"),
            }
        else:
            assert value == ""
    # The tracker's own table of handled events, plus the live picture's and the client's.
    consumed = set(CallTracker()._handlers) | {
        "OriginateResponse",
        "QueueMemberStatus",
        "QueueMemberPause",
        "QueueMemberAdded",
        "QueueMemberRemoved",
        "QueueCallerJoin",
        "QueueCallerLeave",
        "QueueCallerAbandon",
    }
    assert consumed <= names, f"not passed by eventfilter: {sorted(consumed - names)}"
    for variable in TRACKED_VARIABLES:
        assert variable.startswith("SMELINE_") or variable == "MIXMONITOR_FILENAME"


def test_manager_user_render_refuses_hostile_values() -> None:
    text = render_manager_user(
        ManagerUser(secret="Ami-secret-0001", extra_permit=("10.0.0.5/255.255.255.255",))
    )
    assert "[smeline](smeline-ami-user)" in text and "permit = 10.0.0.5/255.255.255.255" in text
    for bad in (
        ManagerUser(secret="Ami-secret-0001\n[x]"),
        ManagerUser(secret="Ami;secret;0001"),
        ManagerUser(secret="Ami-secret-0001", username="general"),
        ManagerUser(secret="Ami-secret-0001", username="x\ny"),
        ManagerUser(secret="Ami-secret-0001", extra_permit=("0.0.0.0/0.0.0.0\nread=all",)),
    ):
        with pytest.raises(ValueError):
            render_manager_user(bad)


# --------------------------------------------------------------------------- confbridge, misc


def test_confbridge_profiles_end_the_room_with_the_caller(files: dict[str, str]) -> None:
    sections = read_config("confbridge.conf", files)
    bridge = one_section(sections, "smeline-bridge")
    assert bridge.get("type") == "bridge"
    assert bridge.get("record_conference") == "no"
    assert bridge.get("internal_sample_rate") == "8000"
    sounds = [(k, v) for k, v in bridge.options if k.startswith("sound_")]
    assert len(sounds) > 10
    for key, value in sounds:
        assert value in PROMPTS, f"{key} = {value} is not in the catalogue"
    caller = one_section(sections, "smeline-caller")
    assert caller.get("type") == "user"
    assert caller.get("marked") == "yes"
    assert caller.get("music_on_hold_when_empty") == "yes"
    assert caller.get("quiet") == "yes"
    assert caller.get("dtmf_passthrough") == "yes"
    party = one_section(sections, "smeline-party")
    assert party.get("end_marked") == "yes"
    assert party.get("marked") is None
    assert party.get("dtmf_passthrough") == "yes"
    assert party.get("quiet") == "yes"


def test_http_listens_on_loopback_for_the_proxy(files: dict[str, str]) -> None:
    general = one_section(read_config("http.conf", files), "general")
    assert general.get("bindaddr") == "127.0.0.1"
    assert general.get("enabled") == "yes"


def test_render_all_ships_static_files_and_everything_they_include(
    files: dict[str, str],
) -> None:
    assert set(STATIC_FILES) <= set(files)
    assert {QUEUES_FILE, AGENTS_FILE, GLOBALS_FILE, MANAGER_FILE} <= set(files)
    for name in STATIC_FILES:
        assert files[name] == (DIALPLAN / name).read_text(encoding="utf-8")
        for included in re.findall(r"^#include\s+(\S+)", files[name], re.M):
            assert included in files, f"{name} includes {included}, which is not rendered"
    with pytest.raises(ValueError):
        render_all(
            windows=[w for w in WINDOW_QUEUES if w.code != "city"],
            agents=[],
            settings=SETTINGS,
            manager=MANAGER,
        )


def test_write_all_keeps_secrets_from_other_users(files: dict[str, str], tmp_path: Path) -> None:
    written = write_all(files, tmp_path / "asterisk")
    assert {p.name for p in written} == set(files)
    for path in written:
        assert stat.S_IMODE(path.stat().st_mode) & 0o007 == 0
    with pytest.raises(ValueError):
        write_all({"../evil.conf": ""}, tmp_path)
