"""The reference data every deployment starts with (Meizhou)."""

from __future__ import annotations

CITY_CODE = "441400"

# (code, name) — GB/T 2260 codes of Meizhou and its eight county-level areas.
COUNTIES: list[tuple[str, str]] = [
    ("441400", "梅州市"),
    ("441402", "梅江区"),
    ("441403", "梅县区"),
    ("441481", "兴宁市"),
    ("441426", "平远县"),
    ("441427", "蕉岭县"),
    ("441422", "大埔县"),
    ("441423", "丰顺县"),
    ("441424", "五华县"),
]

# (code, name, county code)
WINDOWS: list[tuple[str, str, str]] = [
    ("meijiang", "梅江区窗口", "441402"),
    ("meixian", "梅县区窗口", "441403"),
    ("xingning", "兴宁市窗口", "441481"),
    ("pingyuan", "平远县窗口", "441426"),
    ("jiaoling", "蕉岭县窗口", "441427"),
    ("dabu", "大埔县窗口", "441422"),
    ("fengshun", "丰顺县窗口", "441423"),
    ("wuhua", "五华县窗口", "441424"),
    ("city", "市中心窗口", CITY_CODE),
]

CATEGORIES: list[tuple[str, str]] = [
    ("information", "信息咨询"),
    ("training", "人员培训"),
    ("technology", "技术支持"),
    ("startup", "创业辅导"),
    ("market", "市场开拓"),
    ("management", "管理咨询"),
    ("financing", "融资担保"),
    ("legal", "法律维权"),
    ("other", "其他"),
]

CHANNELS: list[tuple[str, str]] = [
    ("phone", "电话服务"),
    ("call", "呼叫服务"),
    ("counter", "柜台式服务"),
    ("contract", "合同订单服务"),
    ("online", "网络在线服务"),
    ("publication", "刊物信函及短信服务"),
    ("onsite", "上门服务"),
    ("matchmaking", "供需对接服务"),
    ("other", "其他"),
]
