"""What web chat itself writes (zh-CN, one place): system lines of a
conversation and the work order of a left message."""

from __future__ import annotations

TEXTS = {
    "assigned": "{agent}已接入，为您服务。",
    "transferred_agent": "会话已转接给{agent}。",
    "transferred_window": "会话已转接至{window}，请稍候。",
    "requeued": "坐席连接已断开，正在为您重新安排坐席，请稍候。",
    "ended_by_agent": "坐席已结束本次会话。",
    "ended_by_visitor": "访客已离开会话。",
    "expert_joined": "专家{expert}已加入会话。",
    "expert_left": "专家{expert}已离开会话。",
    "message_subject": "网站在线留言，请回复",
    "message_body": "访客 {name}（{company}）通过网站在线客服留言：\n\n{body}",
    "no_company": "未填写单位",
    "chat_user": "网站在线客服系统",
}
