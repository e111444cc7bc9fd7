"""What contacts write (zh-CN, one place): work orders opened from a contact."""

from __future__ import annotations

TEXTS = {
    "chat_subject": "网站在线咨询：{who}",
    "call_subject": "热线来电：{who}",
    "chat_body": "由网站在线会话转为工单（会话 {chat_id}）。\n\n会话记录：\n{transcript}",
    "call_body": (
        "由热线来电转为工单。\n来电号码：{caller}\n来电时间：{started}\n"
        "通话时长：{talk} 秒\n通话标识：{linkedid}"
    ),
    "visitor": "访客",
    "agent": "坐席",
    "expert": "专家",
    "system": "系统",
    "unknown_caller": "未知号码",
    "unknown": "未填写",
    "truncated": "……（记录过长，已截断）",
}
