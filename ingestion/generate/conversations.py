"""Conversations and their analysis events, a block of customers at a time, vectorised with numpy.

Conversations are ~95% of all rows (about 50 per customer), so nothing here loops per message in
Python except building the message ids. A customer chats in sessions on random days during their
active period, in their own daytime; a session is a burst of alternating messages seconds to
minutes apart. Each message's text comes from a pre-built pool (phrases x slot fillers, script
texts, messages with contact details) chosen by the customer's language, the direction and the
funnel phase the customer is in at that moment; the pool entry (message_pool.py) carries the
matching sentiment, keywords, signals, question-back flag and base quality. The employee is the
ToFu contact before Engage, the MoFu advisor from Engage and the BoFu/VIP employee from the first
deposit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ingestion.contracts import CONTRACTS, STAGES
from ingestion.generate import phrases, vocab
from ingestion.generate.config import DAY, GenerateConfig, to_datetime
from ingestion.generate.content import Script
from ingestion.generate.funnel import ENGAGE, SUBSCRIBE, Life
from ingestion.generate.kpis import KpiCounters
from ingestion.generate.message_pool import (
    ASK_BACK,
    EVENT_TYPES,
    HIGH_QUALITY,
    INTENT,
    RISK,
    SENTIMENTS,
    STICKINESS,
    MessagePool,
)
from ingestion.generate.people import Employee
from ingestion.generate.rules import HIGH_QUALITY_MIN_SCORE
from ingestion.generate.writers import TableSink, arrow_schema

# (lowest, highest) impact score of each EVENT_TYPES entry, in the same order.
EVENT_IMPACT = ((3, 6), (4, 8), (2, 5), (5, 9), (5, 10), (4, 8), (-8, -3))
MESSAGE_TYPES = ("text", "image", "voice", "video")
MESSAGE_TYPE_SHARE = (0.9, 0.05, 0.04, 0.01)
MEDIA_EXTENSION = (None, "jpg", "ogg", "mp4")

SESSIONS_PER_DAY = 0.32  # at Awareness; each stage reached adds SESSIONS_PER_STAGE
SESSIONS_PER_STAGE = 0.04
MEAN_SESSION_MESSAGES = 5.5
SCRIPT_SHARE = 0.15  # outbound messages that use a script
CONTACT_SHARE = 0.012  # ToFu-phase messages that share contact details
EVENT_SHARE = 0.35  # analysed messages that get an event row
NEVER = np.iinfo(np.int64).max // 4


@dataclass
class _Customers:
    """The block's customers as arrays (index = position in the block)."""

    t0: np.ndarray
    end: np.ndarray
    stage: np.ndarray
    stage_ts: np.ndarray  # (customers, 9), NEVER where not reached
    language: np.ndarray
    platform: np.ndarray
    second_platform: np.ndarray
    utc_offset: np.ndarray
    tofu: np.ndarray
    advisor: np.ndarray
    bofu: np.ndarray

    @classmethod
    def of(cls, lives: list[Life]) -> _Customers:
        stage_ts = np.full((len(lives), len(STAGES)), NEVER, dtype=np.int64)
        for i, life in enumerate(lives):
            stage_ts[i, : len(life.stage_ts)] = life.stage_ts

        def column(get, dtype=np.int64):
            return np.fromiter((get(life) for life in lives), dtype=dtype, count=len(lives))

        return cls(
            t0=stage_ts[:, 0],
            end=column(lambda x: x.activity_end),
            stage=column(lambda x: x.stage),
            stage_ts=stage_ts,
            language=column(lambda x: x.profile.language),
            platform=column(lambda x: x.profile.platform),
            second_platform=column(lambda x: x.profile.second_platform),
            utc_offset=column(lambda x: x.profile.city.utc_offset),
            tofu=column(lambda x: x.tofu_emp.index),
            advisor=column(lambda x: x.advisor.index if x.advisor else -1),
            bofu=column(lambda x: x.bofu_emp.index if x.bofu_emp else -1),
        )


class ConversationGenerator:
    def __init__(
        self,
        config: GenerateConfig,
        pool: MessagePool,
        staff: list[Employee],
        scripts: list[Script],
        conversations: TableSink,
        events: TableSink,
        kpis: KpiCounters,
    ):
        self.config = config
        self.pool = pool
        self.employee_code_list = [e.code for e in staff]
        self.script_code_list = [s.code for s in scripts]
        self.employee_codes = pa.array(self.employee_code_list, pa.string())
        self.script_codes = pa.array(self.script_code_list, pa.string())
        self.script_usage = np.zeros(len(scripts), dtype=np.int64)
        self.script_successes = np.zeros(len(scripts), dtype=np.int64)
        self.conversations = conversations
        self.events = events
        self.kpis = kpis
        self.schema = arrow_schema(CONTRACTS["conversations"])
        self.next_message = 1
        self.next_event = 1

    def run_block(self, lives: list[Life], block: int) -> None:
        rng = self.config.numpy_rng("conversations", block)
        c = _Customers.of(lives)
        cust, session, sent, position = self._timeline(c, rng)
        m = len(sent)
        customer_starts = (rng.random(session.max(initial=0) + 1) < 0.3)[session]
        direction = ((position + customer_starts) % 2 ^ (rng.random(m) < 0.12)).astype(np.int64)
        opening = np.r_[True, cust[1:] != cust[:-1]] if m else np.zeros(0, dtype=bool)
        direction[opening] = phrases.OUTBOUND  # the employee reaches out first
        reached = (c.stage_ts[cust, 1:] <= sent[:, None]).sum(axis=1)
        phase = np.where(
            reached >= SUBSCRIBE,
            phrases.PHASE_BOFU,
            np.where(reached >= ENGAGE, phrases.PHASE_MOFU, phrases.PHASE_TOFU),
        )
        sessions = session.max(initial=0) + 1
        session_cust = np.zeros(sessions, dtype=np.int64)
        session_cust[session] = cust
        lang = np.where(
            c.language[session_cust] == vocab.LANG_BOTH,
            rng.integers(0, 2, sessions),
            c.language[session_cust],
        )[session]
        platform = np.where(
            rng.random(sessions) < 0.92, c.platform[session_cust], c.second_platform[session_cust]
        )[session]
        employee = np.where(
            sent >= c.stage_ts[cust, SUBSCRIBE],
            c.bofu[cust],
            np.where(sent >= c.stage_ts[cust, ENGAGE], c.advisor[cust], c.tofu[cust]),
        )
        entry, special = self._pick_entries(lang, direction, phase, rng)
        kind = rng.choice(len(MESSAGE_TYPES), size=m, p=MESSAGE_TYPE_SHARE)
        kind[special] = 0
        has_text = (kind == 0) | (kind == 2)
        quality = np.where(has_text, self.pool.quality[entry], 4) + rng.integers(-1, 2, m)
        quality = np.clip(quality, 1, 10)
        asks_back = self.pool.asks_back[entry] & has_text
        script = np.where(has_text, self.pool.script[entry], -1)
        numbers = np.arange(self.next_message, self.next_message + m)
        self.next_message += m
        message_ids = [
            f"MSG_{vocab.PLATFORMS[p]}_{n}" for p, n in zip(platform.tolist(), numbers.tolist(), strict=True)
        ]

        table = self._table(
            lives,
            cust,
            employee,
            direction,
            kind,
            has_text,
            entry,
            quality,
            asks_back,
            script,
            platform,
            sent,
            message_ids,
            rng,
        )
        self._write_by_month(table, sent)
        self._record(lives, c, cust, employee, sent, quality, asks_back, script)
        self._events(
            lives,
            cust,
            employee,
            direction,
            has_text,
            entry,
            quality,
            asks_back,
            script,
            reached,
            sent,
            message_ids,
            rng,
        )

    def _timeline(self, c: _Customers, rng: np.random.Generator):
        """Sessions, then messages: (customer, session, sent_at, position in session), sorted by time."""
        end_ts = self.config.end_ts
        active_days = (c.end - c.t0) / DAY
        rate = SESSIONS_PER_DAY + SESSIONS_PER_STAGE * c.stage
        per_customer = 1 + rng.poisson(rate * active_days)
        s_cust = np.repeat(np.arange(len(c.t0)), per_customer)
        count = len(s_cust)
        moment = c.t0[s_cust] + (rng.random(count) * (c.end - c.t0)[s_cust]).astype(np.int64)
        # Move to the customer's daytime (08:00-23:00 local) on that day.
        local = moment + c.utc_offset[s_cust] * 3600
        start = local - local % DAY + rng.integers(8 * 3600, 23 * 3600, count) - c.utc_offset[s_cust] * 3600
        start = np.clip(start, c.t0[s_cust], c.end[s_cust])
        first = np.cumsum(per_customer) - per_customer
        start[first] = c.t0 + rng.integers(60, 1800, len(c.t0))  # the first contact opens the chat
        lengths = 2 + rng.poisson(MEAN_SESSION_MESSAGES - 2, count)
        m_session = np.repeat(np.arange(count), lengths)
        session_first = np.cumsum(lengths) - lengths
        position = np.arange(len(m_session)) - session_first[m_session]
        gaps = rng.exponential(180.0, len(m_session)) + 10
        gaps[position == 0] = 0
        elapsed = np.cumsum(gaps)
        sent = start[m_session] + (elapsed - elapsed[session_first][m_session]).astype(np.int64)
        cust = s_cust[m_session]
        keep = (sent < end_ts) & (sent <= c.end[cust] + 3 * 3600)
        cust, m_session, sent, position = cust[keep], m_session[keep], sent[keep], position[keep]
        order = np.lexsort((sent, cust))
        return cust[order], m_session[order], sent[order], position[order]

    def _pick_entries(self, lang, direction, phase, rng):
        m = len(lang)
        entry = np.zeros(m, dtype=np.int64)
        for key, free in self.pool.free.items():
            idx = np.nonzero((lang == key[0]) & (direction == key[1]) & (phase == key[2]))[0]
            if not len(idx):
                continue
            chosen = free[rng.integers(0, len(free), len(idx))]
            scripted = self.pool.scripted[key]
            if len(scripted):
                use = rng.random(len(idx)) < SCRIPT_SHARE
                chosen = np.where(use, scripted[rng.integers(0, len(scripted), len(idx))], chosen)
            entry[idx] = chosen
        special = (phase == phrases.PHASE_TOFU) & (rng.random(m) < CONTACT_SHARE)
        for (lang_key, dir_key), contacts in self.pool.contacts.items():
            idx = np.nonzero(special & (lang == lang_key) & (direction == dir_key))[0]
            entry[idx] = contacts[rng.integers(0, len(contacts), len(idx))]
        special |= self.pool.script[entry] >= 0  # scripts and contact details are always text
        return entry, special

    def _table(
        self,
        lives,
        cust,
        employee,
        direction,
        kind,
        has_text,
        entry,
        quality,
        asks_back,
        script,
        platform,
        sent,
        message_ids,
        rng,
    ) -> pa.Table:
        pool = self.pool
        m = len(sent)
        text_mask = pa.array(has_text)
        null = pa.scalar(None, pa.string())

        def text_only(values: pa.Array) -> pa.Array:
            return pc.if_else(text_mask, values.take(pa.array(entry)), null)

        media = [None] * m
        for i in np.nonzero(kind != 0)[0].tolist():
            media[i] = (
                f"https://media.funnelhouse.example/{vocab.PLATFORMS[platform[i]]}/{message_ids[i]}."
                f"{MEDIA_EXTENSION[kind[i]]}"
            )
        has_script = script >= 0
        created = np.minimum(sent + rng.integers(1, 300, m), self.config.end_ts - 1)
        columns = {
            "source_message_id": pa.array(message_ids, pa.string()),
            "message_type": pa.array(MESSAGE_TYPES).take(pa.array(kind)),
            "direction": pa.array(("outbound", "inbound")).take(pa.array(direction)),
            "content": text_only(pool.text),
            "media_url": pa.array(media, pa.string()),
            "sentiment": pa.array(SENTIMENTS).take(pa.array(pool.sentiment[entry].astype(np.int64))),
            "keywords": text_only(pool.keywords_json),
            "intention_signals": text_only(pool.signals_json),
            "risk_keywords": text_only(pool.risk_json),
            "is_反问": pa.array(asks_back),
            "quality_score": pa.array(quality.astype(np.int64)),
            "platform": pa.array(vocab.PLATFORMS).take(pa.array(platform)),
            "sent_at": pa.array(sent.astype("datetime64[s]")).cast(pa.timestamp("us")),
            "created_at": pa.array(created.astype("datetime64[s]")).cast(pa.timestamp("us")),
            "customer_code": pa.array([life.code for life in lives], pa.string()).take(pa.array(cust)),
            "employee_code": self.employee_codes.take(pa.array(employee)),
            "script_used_code": pc.if_else(
                pa.array(has_script), self.script_codes.take(pa.array(np.where(has_script, script, 0))), null
            ),
        }
        return pa.Table.from_arrays([columns[f.name] for f in self.schema], schema=self.schema)

    def _write_by_month(self, table: pa.Table, sent: np.ndarray) -> None:
        months = sent.astype("datetime64[s]").astype("datetime64[M]")
        for month in np.unique(months):
            rows = np.nonzero(months == month)[0]
            self.conversations.write_table(table.take(pa.array(rows)), batch=str(month).replace("-", "_"))

    def _record(self, lives, c, cust, employee, sent, quality, asks_back, script) -> None:
        n = len(lives)
        totals = np.bincount(cust, minlength=n)
        high = np.bincount(cust, weights=quality >= HIGH_QUALITY_MIN_SCORE, minlength=n).astype(np.int64)
        asks = np.bincount(cust, weights=asks_back, minlength=n).astype(np.int64)
        last = np.full(n, -1, dtype=np.int64)
        np.maximum.at(last, cust, sent)
        for i, life in enumerate(lives):
            life.conversations, life.quality_conversations, life.asks_back = (
                int(totals[i]),
                int(high[i]),
                int(asks[i]),
            )
            life.last_contact_ts = int(last[i]) if last[i] >= 0 else None
        self.kpis.record_conversations(employee, sent, quality, asks_back)
        used = script >= 0
        self.script_usage += np.bincount(script[used], minlength=len(self.script_usage))
        self.script_successes += np.bincount(
            script[used & (quality >= HIGH_QUALITY_MIN_SCORE)], minlength=len(self.script_usage)
        )

    def _events(
        self,
        lives,
        cust,
        employee,
        direction,
        has_text,
        entry,
        quality,
        asks_back,
        script,
        reached,
        sent,
        message_ids,
        rng,
    ) -> None:
        pool = self.pool
        m = len(sent)
        event = np.full(m, -1, dtype=np.int64)
        event[quality >= 9] = HIGH_QUALITY
        event[(direction == phrases.INBOUND) & has_text & pool.has_signals[entry]] = INTENT
        event[has_text & pool.has_risk[entry]] = RISK
        event[script >= 0] = pool.event[entry][script >= 0]
        event[asks_back] = ASK_BACK
        event[rng.random(m) >= EVENT_SHARE] = -1
        # Rapport built around a message, not in it: these events carry no conversation reference.
        unattached = (event < 0) & (direction == phrases.OUTBOUND) & (rng.random(m) < 0.03)
        event[unattached] = STICKINESS
        chosen = np.nonzero(event >= 0)[0]
        lows = np.array([lo for lo, _ in EVENT_IMPACT])[event[chosen]]
        highs = np.array([hi for _, hi in EVENT_IMPACT])[event[chosen]]
        impact = rng.integers(lows, highs + 1)
        created = np.minimum(sent[chosen] + rng.integers(5, 600, len(chosen)), self.config.end_ts - 1)
        rows = []
        for j, i in enumerate(chosen.tolist()):
            kind = int(event[i])
            data = {
                "stage": STAGES[int(reached[i])],
                "direction": "inbound" if direction[i] else "outbound",
                "quality_score": int(quality[i]),
            }
            if kind == INTENT:
                data["signals"] = pool.signals[entry[i]]
            elif kind == RISK:
                data["risk_keywords"] = pool.risk[entry[i]]
            elif script[i] >= 0:
                data["script_code"] = self.script_code_list[int(script[i])]
            rows.append(
                {
                    "source_key": f"EVT_{self.next_event:09d}",
                    "event_type": EVENT_TYPES[kind],
                    "event_data": data,
                    "impact_score": int(impact[j]),
                    "created_at": to_datetime(int(created[j])),
                    "conversation_message_id": None if unattached[i] else message_ids[i],
                    "customer_code": lives[cust[i]].code,
                    "employee_code": self.employee_code_list[int(employee[i])],
                }
            )
            self.next_event += 1
        self.events.write(rows)
