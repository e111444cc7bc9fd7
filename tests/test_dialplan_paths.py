"""Walking the shipped [smeline-inbound] dialplan with the AGI outcomes a real
Asterisk gives (the channel double's AGISTATUS), to prove every path ends in
a queue: smeline down, smeline wrong, smeline right.

The walker understands only what [smeline-inbound] uses (NoOp, Set, Answer,
Playback, AGI, GotoIf on one ``"${VAR}" = "value"`` comparison, Goto, Hangup)
and fails loudly on anything else, so a change to that context that it cannot
follow breaks this test instead of passing unseen.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import pytest

from smeline.agi_scripts.fastagi import AgiSession, FastAgiServer
from smeline.agi_scripts.handlers import DECISION_FIELDS, pack_decision
from smeline.telephony.asterisk_config import dialplan_dir
from tests.asterisk_double.agi_channel import AgiChannelDouble

_LINE = re.compile(r"^\s*(exten|same)\s*=>\s*(.*)$")
_COND = re.compile(r'^\$\["\$\{(\w+)\}" (=|!=) "([^"]*)"\]$')


@dataclass
class Step:
    label: str | None
    app: str
    data: str


@dataclass
class Context:
    extens: dict[str, list[Step]] = field(default_factory=dict)


def parse(text: str) -> dict[str, Context]:
    contexts: dict[str, Context] = {}
    current: Context | None = None
    exten = ""
    for raw in text.splitlines():
        line = raw.split(";", 1)[0].rstrip()
        if line.startswith("[") and line.endswith("]"):
            current = contexts.setdefault(line[1:-1], Context())
            continue
        match = _LINE.match(line)
        if not match or current is None:
            continue
        kind, rest = match.groups()
        if kind == "exten":
            exten, _, rest = rest.partition(",")
            _priority, _, rest = rest.partition(",")
            current.extens[exten] = []
        else:
            _priority, _, rest = rest.partition(",")
        label = None
        if _priority.startswith("n(") and _priority.endswith(")"):
            label = _priority[2:-1]
        app, _, data = rest.partition("(")
        current.extens[exten].append(Step(label, app.strip(), data[:-1] if data else ""))
    return contexts


_CUT = re.compile(r"\$\{CUT\((\w+),(.),(\d+)\)\}")


def _subst(text: str, variables: dict[str, str]) -> str:
    # ${CUT(var,delimiter,n)}: the n-th field (1-based), "" past the end —
    # Asterisk's func_cut for a single field number.
    def cut(m: re.Match[str]) -> str:
        parts = variables.get(m.group(1), "").split(m.group(2))
        n = int(m.group(3))
        return parts[n - 1] if n <= len(parts) else ""

    text = _CUT.sub(cut, text)
    return re.sub(r"\$\{(\w+)\}", lambda m: variables.get(m.group(1), ""), text)


def walk(
    contexts: dict[str, Context], variables: dict[str, str], agi_result: dict[str, str]
) -> tuple[str, dict[str, str], list[str]]:
    """Run [smeline-inbound] call until it leaves the context; returns where it went."""
    steps = contexts["smeline-inbound"].extens["call"]
    played: list[str] = []
    pc = 0
    for _ in range(100):
        step = steps[pc]
        pc += 1
        if step.app in ("NoOp", "Answer"):
            continue
        if step.app == "Set":
            name, _, value = step.data.partition("=")
            if name.startswith(("CHANNEL(", "TIMEOUT(")):
                continue
            variables[name] = _subst(value, variables)
        elif step.app == "Playback":
            played.append(step.data)
        elif step.app == "AGI":
            variables.update(agi_result)
        elif step.app in ("GotoIf", "Goto"):
            if step.app == "GotoIf":
                condition, _, target = step.data.partition("?")
                match = _COND.match(condition)
                assert match, f"walker cannot evaluate {condition!r}"
                var, op, value = match.groups()
                holds = (variables.get(var, "") == value) == (op == "=")
                if not holds:
                    continue
            else:
                target = step.data
            if "," in target:
                return target, variables, played
            labels = [s.label for s in steps]
            assert target in labels, target
            pc = labels.index(target)
        elif step.app == "Hangup":
            return "hangup", variables, played
        else:
            raise AssertionError(f"walker does not know {step.app}")
    raise AssertionError("no exit from [smeline-inbound]")


@pytest.fixture(scope="module")
def contexts() -> dict[str, Context]:
    return parse((dialplan_dir() / "extensions.conf").read_text(encoding="utf-8"))


async def _agi_outcome(
    server_running: bool, assigned: dict[str, str] | None = None
) -> dict[str, str]:
    """What AGI() leaves on the channel, from the channel double against a
    real FastAGI server (or against a port where nothing listens)."""
    server = FastAgiServer(port=0)

    async def route(session: AgiSession) -> None:
        for name, value in (assigned or {}).items():
            await session.set_variable(name, value)

    server.add_route("route", route)
    await server.start()
    port = server.port
    if not server_running:
        await server.stop()
    try:
        outcome = await AgiChannelDouble("127.0.0.1", port, script="route").run()
    finally:
        if server_running:
            await server.stop()
    return {"AGISTATUS": outcome.agistatus, **outcome.assigned}


async def test_fastagi_server_down_takes_the_fallback_path_to_the_city_queue(
    contexts: dict[str, Context],
) -> None:
    result = await _agi_outcome(server_running=False)
    assert result["AGISTATUS"] == "FAILURE"
    target, variables, played = walk(contexts, {}, result)
    assert target == "smeline-queue,s,1"
    assert variables["SMELINE_QUEUE"] == "city" and variables["SMELINE_ACTION"] == "queue"
    assert "smeline/technical-fallback" in played


async def test_a_routed_call_goes_where_smeline_said(contexts: dict[str, Context]) -> None:
    result = await _agi_outcome(
        server_running=True, assigned={"SMELINE_QUEUE": "xingning", "SMELINE_ACTION": "queue"}
    )
    target, variables, played = walk(contexts, {}, result)
    assert target == "smeline-queue,s,1" and variables["SMELINE_QUEUE"] == "xingning"
    assert "smeline/technical-fallback" not in played


async def test_the_packed_decision_is_unpacked_into_every_variable(
    contexts: dict[str, Context],
) -> None:
    wanted = {
        "SMELINE_ACTION": "queue",
        "SMELINE_QUEUE": "xingning",
        "SMELINE_OVERFLOW": "city",
        "SMELINE_ANNOUNCE": "",
        "SMELINE_PRIO": "0",
        "SMELINE_QUEUE_TIMEOUT": "60",
        "SMELINE_COUNTY": "441481",
        "SMELINE_WINDOW": "xingning",
        "SMELINE_CATEGORY": "technology",
        "SMELINE_CALLER_KEY": "075341234567",
    }
    assert set(wanted) == set(DECISION_FIELDS)
    result = await _agi_outcome(
        server_running=True, assigned={"SMELINE_DECISION": pack_decision(wanted)}
    )
    target, variables, played = walk(contexts, {}, result)
    assert target == "smeline-queue,s,1"
    assert {name: variables[name] for name in DECISION_FIELDS} == wanted
    assert "smeline/technical-fallback" not in played


async def test_a_packed_after_hours_decision_goes_to_voicemail(
    contexts: dict[str, Context],
) -> None:
    packed = pack_decision({"SMELINE_ACTION": "afterhours", "SMELINE_WINDOW": "wuhua"})
    result = await _agi_outcome(server_running=True, assigned={"SMELINE_DECISION": packed})
    target, variables, _ = walk(contexts, {}, result)
    assert target == "smeline-afterhours,s,1" and variables["SMELINE_WINDOW"] == "wuhua"


async def test_after_hours_goes_to_voicemail(contexts: dict[str, Context]) -> None:
    result = await _agi_outcome(server_running=True, assigned={"SMELINE_ACTION": "afterhours"})
    target, _, _ = walk(contexts, {}, result)
    assert target == "smeline-afterhours,s,1"


async def test_an_unknown_action_from_smeline_falls_back_to_the_city(
    contexts: dict[str, Context],
) -> None:
    result = await _agi_outcome(
        server_running=True, assigned={"SMELINE_ACTION": "smeline-agents", "SMELINE_QUEUE": "x"}
    )
    target, variables, played = walk(contexts, {}, result)
    assert target == "smeline-queue,s,1" and variables["SMELINE_QUEUE"] == "city"
    assert "smeline/technical-fallback" in played


async def test_a_route_that_sets_nothing_leaves_the_defaults(contexts: dict[str, Context]) -> None:
    result = await _agi_outcome(server_running=True, assigned={})
    target, variables, _ = walk(contexts, {}, result)
    assert target == "smeline-queue,s,1" and variables["SMELINE_QUEUE"] == "city"
