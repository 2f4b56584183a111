"""The words of a report in each supported language (Chinese is the default). Money is in US dollars:
the marts sum every movement at its day's rate (dbt seed fx_rates_to_usd), so the labels say so."""

from __future__ import annotations

TEXTS = {
    "zh": {
        "title_daily": "每日 KPI 报告",
        "title_weekly": "每周 KPI 报告",
        "scope_all": "全公司",
        "scope_department": "部门：{department}",
        "headline": "核心指标",
        "metric": "指标",
        "value": "本期",
        "vs_previous_daily": "较前一日",
        "vs_previous_weekly": "较上周",
        "vs_last_week": "较上周同日",
        "net_deposit": "净入金 (USD)",
        "deposits": "入金 (USD)",
        "withdrawals": "出金 (USD)",
        "withdrawal_rate": "出金率",
        "accounts_opened": "开户数",
        "first_deposits": "首次入金",
        "new_contacts": "新增接粉",
        "retained": "留群",
        "group_retention": "留群率",
        "quality_conversations": "优质对话",
        "funnel": "转化漏斗",
        "stage": "阶段",
        "count": "人数",
        "trend_money": "近 30 天入金 / 出金 / 净入金 (USD)",
        "trend_activity": "近 30 天接粉与开户",
        "leaderboard": "员工排行榜",
        "rank": "名次",
        "employee": "员工",
        "level": "等级",
        "overall_score": "综合评分",
        "leaderboard_note": "前 {shown} 名，共 {total} 人；完整名单见附件 CSV。",
        "stalled": "阶段停留过久的客户",
        "customer": "客户编号",
        "days_in_stage": "停留天数",
        "usual_days": "通常天数",
        "stalled_none": "没有停留过久的客户。",
        "footer": "数据可信度",
        "freshness": "数据截至",
        "rejects": "入库拒绝行数（本期）",
        "dbt_tests": "dbt 测试",
        # The oldest of the tests' latest runs first: a KPI build reruns only its mart's few tests.
        "dbt_tests_ran_at": "最近运行于 {at}",
        "dbt_tests_ran_between": "各测试最近一次运行于 {oldest} 至 {newest} 之间",
        "unknown": "未知",
        "generated": "生成时间",
        "font_missing": "未找到中文字体：图表中的中文可能显示为方框。",
        # The footer's note on customers also states what the stalled list is as of (MartReader.stalled_customers).
        "no_customer_details": "本报告仅含客户编号，不含任何客户联系方式。停留过久的客户按本期最后一天统计"
        "（数据截止日更早时按数据截止日）：此后已进入其他阶段的客户既不列出，也不计入通常天数，因为数据只保留客户的当前阶段。",
        "attachments": "附件：PDF 版报告、员工排行榜 CSV。",
        "preliminary": "初步",
        "preliminary_note": "初步报告：数据刷新于本期结束之前，本期最后几小时的数据尚未计入。",
        # The preliminary note's second sentence: a configured recipient's scheduled run mails the complete
        # report; nothing does for an address given only to `funnelhouse report --to` (render.render).
        "preliminary_complete_follows": "本期结束后将发送完整报告。",
        "preliminary_complete_on_request": "完整报告不会自动发送到此地址：数据完整后，带 --send "
        "再次运行本期的 funnelhouse report 命令即可发送。",
    },
    "en": {
        "title_daily": "Daily KPI report",
        "title_weekly": "Weekly KPI report",
        "scope_all": "Whole company",
        "scope_department": "Department: {department}",
        "headline": "Headline KPIs",
        "metric": "Metric",
        "value": "This period",
        "vs_previous_daily": "vs previous day",
        "vs_previous_weekly": "vs previous week",
        "vs_last_week": "vs same day last week",
        "net_deposit": "Net deposit (USD)",
        "deposits": "Deposits (USD)",
        "withdrawals": "Withdrawals (USD)",
        "withdrawal_rate": "Withdrawal rate",
        "accounts_opened": "Accounts opened",
        "first_deposits": "First deposits",
        "new_contacts": "New contacts",
        "retained": "Retained in group",
        "group_retention": "Group retention",
        "quality_conversations": "Quality conversations",
        "funnel": "Funnel",
        "stage": "Stage",
        "count": "Count",
        "trend_money": "Deposits / withdrawals / net deposit (USD), last 30 days",
        "trend_activity": "New contacts and accounts opened, last 30 days",
        "leaderboard": "Employee leaderboard",
        "rank": "#",
        "employee": "Employee",
        "level": "Level",
        "overall_score": "Overall score",
        "leaderboard_note": "Top {shown} of {total}; the full list is the attached CSV.",
        "stalled": "Customers stalled in a stage",
        "customer": "Customer code",
        "days_in_stage": "Days in stage",
        "usual_days": "Usual days",
        "stalled_none": "No customer is stalled.",
        "footer": "Can you trust these numbers?",
        "freshness": "Data up to",
        "rejects": "Ingestion rejects (period)",
        "dbt_tests": "dbt tests",
        "dbt_tests_ran_at": "last run {at}",
        "dbt_tests_ran_between": "every test last ran between {oldest} and {newest}",
        "unknown": "unknown",
        "generated": "Generated",
        "font_missing": "No CJK font found: Chinese text in charts may show as boxes.",
        "no_customer_details": "Customer codes only: this report holds no customer contact details. Stalled "
        "customers are as of the last day of the period (of the data, if that ends earlier): a customer who has "
        "moved to another stage since is neither listed nor counted in the usual days, as the data keeps only "
        "the current stage of each customer.",
        "attachments": "Attached: the report as PDF, the employee leaderboard as CSV.",
        "preliminary": "preliminary",
        "preliminary_note": "Preliminary report: the data was refreshed before this period ended, so its last hours "
        "are missing.",
        "preliminary_complete_follows": "The complete report follows once the period is over.",
        "preliminary_complete_on_request": "The complete report is not sent to this address by itself: run "
        "funnelhouse report for this period again with --send once its data is complete.",
    },
}

# Journey stages of the seed (customers.current_stage) and employee levels, for English readers.
STAGES_ZH = {
    "Awareness": "认知",
    "Attention": "关注",
    "Trust": "信任",
    "Engage": "互动",
    "Action": "行动",
    "Subscribe": "订阅",
    "Growth": "成长",
    "Loyal": "忠诚",
    "Advocate": "推荐",
}
LEVELS_EN = {
    "新人": "Newcomer",
    "组员": "Member",
    "A级执行者": "A-level",
    "精英": "Elite",
    "高手": "Expert",
    "主管": "Lead",
}


def texts(language: str) -> dict[str, str]:
    return TEXTS[language]


def stage_name(stage: str, language: str) -> str:
    return STAGES_ZH.get(stage, stage) if language == "zh" else stage


def level_name(level: str, language: str) -> str:
    return LEVELS_EN.get(level, level) if language == "en" else level
