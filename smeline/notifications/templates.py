"""Notification texts (zh-CN). SMS gateways in China only send pre-approved templates,
so each template has a stable id that the SMS adapter maps to the gateway's template code.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Template:
    subject: str
    body: str


TEMPLATES: dict[str, Template] = {
    "ticket_assigned": Template(
        subject="工单 {number} 已分派给您",
        body="工单 {number}（{subject}）已分派给您，请及时处理。",
    ),
    "ticket_transferred": Template(
        subject="工单 {number} 已转交给您",
        body="工单 {number}（{subject}）已转交给您办理，办理时限 {due_at}。",
    ),
    "ticket_sla_warning": Template(
        subject="工单 {number} 即将超时",
        body="工单 {number}（{subject}）的{clock}时限 {due_at} 即将到期。",
    ),
    "hotline_voicemail_reference": Template(
        subject="留言已登记 {ref}",
        body="您的留言已登记，工单号 {ref}，我们将于下一个工作日上午回电。",
    ),
    "hotline_callback_reference": Template(
        subject="回电请求已登记 {ref}",
        body="您的回电请求已登记，工单号 {ref}，我们将尽快回电。",
    ),
    "ticket_sla_breached": Template(
        subject="工单 {number} 已超时",
        body="工单 {number}（{subject}）的{clock}时限 {due_at} 已超过，已升级处理。",
    ),
}

CLOCK_NAMES = {
    "first_response": "首次响应",
    "resolution": "办结",
    "handoff": "接转办理",
}


def render(template_id: str, params: dict[str, str]) -> tuple[str, str]:
    template = TEMPLATES[template_id]
    return template.subject.format_map(params), template.body.format_map(params)
