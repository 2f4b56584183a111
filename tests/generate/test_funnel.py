"""The simulated funnel is consistent: journeys, ToFu/MoFu/BoFu rows, money, team and daily KPIs."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal

from ingestion.contracts import STAGES
from ingestion.generate.rules import LARGE_DEPOSIT_CENTS, VIP_THRESHOLD_CENTS, overall_score

CENT = Decimal("0.01")


def _by(rows, key):
    grouped = defaultdict(list)
    for row in rows:
        grouped[row[key]].append(row)
    return grouped


def _rate(part: Decimal, whole: Decimal) -> Decimal | None:
    return (100 * part / whole).quantize(CENT, rounding=ROUND_HALF_UP) if whole else None


def test_team_size_departments_and_managers(clean):
    employees = clean.rows("employees")
    customers = clean.rows("customers")
    assert max(10, len(customers) // 60) <= len(employees) <= max(10, len(customers) // 40 + 1)
    managers = Counter(e["department"] for e in employees if e["level"] == "主管" and e["role"] == "manager")
    assert managers == {d: 1 for d in ("ToFu", "MoFu", "BoFu", "VIP", "培训")}
    assert {e["role"] for e in employees} == {"admin", "manager", "employee", "trainer"}
    owned = Counter(c["assigned_employee_code"] for c in customers)
    for e in employees:
        assert e["total_customers"] == owned.get(e["employee_code"], 0)


def test_customers_spread_over_tiers_sources_and_platforms(clean):
    customers = clean.rows("customers")
    assert {c["tier"] for c in customers} == {"S", "A", "B", "C"}
    assert len({c["source_channel"] for c in customers}) >= 6
    assert len({c["persona_type"] for c in customers}) == 3
    assert len({c["current_stage"] for c in customers}) >= 7


def test_journeys_move_forward_one_stage_at_a_time(clean):
    journeys = _by(clean.rows("customer_journey"), "customer_code")
    for customer in clean.rows("customers"):
        steps = sorted(journeys.get(customer["customer_code"], []), key=lambda r: r["created_at"])
        for n, step in enumerate(steps, start=1):
            assert (step["from_stage"], step["to_stage"]) == (STAGES[n - 1], STAGES[n])
        assert customer["current_stage"] == (steps[-1]["to_stage"] if steps else "Awareness")
        times = [s["created_at"] for s in steps]
        assert times == sorted(times)


def test_tofu_mofu_bofu_rows_follow_the_journey(clean):
    tofu = _by(clean.rows("funnel_tofu"), "customer_code")
    mofu = _by(clean.rows("funnel_mofu"), "customer_code")
    bofu = _by(clean.rows("funnel_bofu"), "customer_code")
    for customer in clean.rows("customers"):
        code, stage = customer["customer_code"], STAGES.index(customer["current_stage"])
        assert len(tofu[code]) == 1
        contact = tofu[code][0]
        assert contact["joined_group"] == (stage >= 1)
        assert len(mofu.get(code, [])) == (1 if stage >= 3 else 0)
        if code in mofu:
            row = mofu[code][0]
            assert row["account_opened"] == (stage >= 4)
            if row["account_opened"]:
                assert row["opened_at"].date() >= contact["contact_date"]
                assert row["days_to_open"] == (row["opened_at"].date() - contact["contact_date"]).days
        assert len(bofu.get(code, [])) == (1 if stage >= 5 else 0)


def test_money_is_consistent(clean):
    opened = {r["customer_code"]: r["opened_at"] for r in clean.rows("funnel_mofu") if r["account_opened"]}
    deposits = _by(clean.rows("deposits"), "customer_code")
    withdrawals = _by(clean.rows("withdrawals"), "customer_code")
    bofu = {r["customer_code"]: r for r in clean.rows("funnel_bofu")}
    assert bofu and any(withdrawals.values())
    for code, rows in deposits.items():
        rows = sorted(rows, key=lambda r: r["deposited_at"])
        assert all(r["deposited_at"] > opened[code] for r in rows), "deposit before account opening"
        assert rows[0]["deposit_type"] == "首金" and rows[0]["status"] == "confirmed"
        for later in rows[1:]:
            large = later["amount"] >= Decimal(LARGE_DEPOSIT_CENTS) / 100
            assert later["deposit_type"] == ("大额入金" if large else "复入金")
        confirmed = [r for r in rows if r["status"] == "confirmed"]
        outs = [w for w in withdrawals.get(code, []) if w["status"] == "confirmed"]
        total_in, total_out = sum(r["amount"] for r in confirmed), sum(w["amount"] for w in outs)
        summary = bofu[code]
        assert summary["total_deposits"] == total_in and summary["total_withdrawals"] == total_out
        assert summary["net_deposit"] == total_in - total_out
        assert summary["deposit_count"] == len(confirmed) and summary["withdrawal_count"] == len(outs)
        assert summary["withdrawal_rate"] == _rate(total_out, total_in)
        assert summary["first_deposit_at"] == rows[0]["deposited_at"]
        assert summary["first_deposit_amount"] == rows[0]["amount"]
        assert summary["max_deposit_amount"] == max(r["amount"] for r in confirmed)
        assert summary["is_vip"] == (total_in >= Decimal(VIP_THRESHOLD_CENTS) / 100)
        # Withdrawals never exceed what was confirmed as deposited before them.
        taken = Decimal(0)
        for w in sorted(withdrawals.get(code, []), key=lambda w: w["requested_at"]):
            if w["status"] == "failed":
                continue
            taken += w["amount"]
            available = sum(r["amount"] for r in confirmed if r["confirmed_at"] <= w["requested_at"])
            assert taken <= available
    assert set(withdrawals) <= set(deposits)


def test_employee_kpis_equal_recomputation_from_rows(clean):
    expected: dict[tuple[str, object], Counter] = defaultdict(Counter)
    amounts: dict[tuple[str, object], Counter] = defaultdict(Counter)
    for row in clean.rows("funnel_tofu"):
        key = (row["employee_code"], row["contact_date"])
        expected[key]["tofu_contacts"] += 1
        expected[key]["tofu_retained"] += bool(row["stayed_in_group"])
    for row in clean.rows("conversations"):
        key = (row["employee_code"], row["sent_at"].date())
        expected[key]["conversations"] += 1
        expected[key]["mofu_quality_conversations"] += row["quality_score"] >= 7
        expected[key]["mofu_反问_count"] += bool(row["is_反问"])
    for row in clean.rows("funnel_mofu"):
        if row["account_opened"]:
            expected[(row["employee_code"], row["opened_at"].date())]["mofu_accounts_opened"] += 1
    for row in clean.rows("deposits"):
        if row["status"] == "confirmed":
            key = (row["employee_code"], row["deposited_at"].date())
            expected[key]["bofu_deposits_count"] += 1
            amounts[key]["deposit"] += row["amount"]
    for row in clean.rows("withdrawals"):
        if row["status"] == "confirmed":
            key = (row["employee_code"], row["requested_at"].date())
            expected[key]["withdrawal_rows"] += 1
            amounts[key]["withdrawal"] += row["amount"]
    kpis = {(r["employee_code"], r["date"]): r for r in clean.rows("employee_kpis")}
    assert set(kpis) == set(expected)
    for key, counts in expected.items():
        row = kpis[key]
        for name in (
            "tofu_contacts",
            "tofu_retained",
            "mofu_quality_conversations",
            "mofu_反问_count",
            "mofu_accounts_opened",
            "bofu_deposits_count",
        ):
            assert row[name] == counts[name], (key, name)
        deposit, withdrawal = amounts[key]["deposit"], amounts[key]["withdrawal"]
        assert row["bofu_deposit_amount"] == deposit and row["bofu_withdrawal_amount"] == withdrawal
        assert row["bofu_net_deposit"] == deposit - withdrawal
        assert row["bofu_withdrawal_rate"] == _rate(withdrawal, deposit)
        assert row["tofu_retention_rate"] == _rate(
            Decimal(counts["tofu_retained"]), Decimal(counts["tofu_contacts"])
        )
        net_cents = int((deposit - withdrawal) * 100)
        assert row["overall_score"] == overall_score(counts, net_cents)
        assert row["created_at"] == datetime.combine(row["date"], time(1)) + timedelta(days=1)


def test_mofu_conversation_totals_match_conversations(clean):
    per_customer: dict[str, Counter] = defaultdict(Counter)
    for row in clean.rows("conversations"):
        counts = per_customer[row["customer_code"]]
        counts["total"] += 1
        counts["high"] += row["quality_score"] >= 7
        counts["asks"] += bool(row["is_反问"])
    for row in clean.rows("funnel_mofu"):
        counts = per_customer[row["customer_code"]]
        assert (row["total_conversations"], row["high_quality_conversations"], row["total_反问_count"]) == (
            counts["total"],
            counts["high"],
            counts["asks"],
        )
