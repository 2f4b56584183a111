"""The message pool: every text a simulated chat message can carry, analysed once up front.

Kept apart from conversations.py, which only picks pool entries by index for millions of messages
with numpy. Built here, once per run from its own RNG stream: phrases x slot fillers (stocks, coins,
amounts), the script texts and messages sharing contact details, per language, direction and
funnel phase; each entry carries what the CRM's text analysis would find in it (sentiment,
keywords, intention signals, risk words, question-back flag, base quality) and, for script
texts, the script and the event the message produces.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from ingestion.generate import phrases, vocab
from ingestion.generate.config import GenerateConfig
from ingestion.generate.content import Script
from ingestion.generate.people import fake_phone
from ingestion.generate.writers import json_text

# Pool entries store sentiment and event as indexes into these tuples.
SENTIMENTS = ("positive", "neutral", "negative")
EVENT_TYPES = ("反问", "框架输出", "粘度建立", "推进动作", "高质量对话", "意向信号", "风险信号")
ASK_BACK, FRAMEWORK, STICKINESS, PUSH, HIGH_QUALITY, INTENT, RISK = range(len(EVENT_TYPES))
SCRIPT_BASE_QUALITIES = (8, 6, 9, 7)  # see _script_quality
VARIANTS_PER_PHRASE = 8


@dataclass
class PoolEntry:
    text: str
    sentiment: int
    asks_back: bool
    keywords: list[str]
    signals: list[str]
    risk: list[str]
    quality: int
    script: int = -1
    event: int = -1


class MessagePool:
    """Every message text the simulation can send, with its analysis, as arrays indexed by entry."""

    def __init__(self, config: GenerateConfig, scripts: list[Script]):
        rng = config.python_rng("message-pool")
        entries: list[PoolEntry] = []
        self.free: dict[tuple[int, int, int], np.ndarray] = {}
        self.scripted: dict[tuple[int, int, int], np.ndarray] = {}
        self.contacts: dict[tuple[int, int], np.ndarray] = {}

        def add(entry: PoolEntry) -> int:
            entries.append(entry)
            return len(entries) - 1

        for lang, table in ((vocab.LANG_ZH, phrases.ZH), (vocab.LANG_EN, phrases.EN)):
            for (direction, phase), phrase_list in table.items():
                self.free[lang, direction, phase] = np.array(
                    [
                        add(
                            _analysed(
                                _fill(p.text, rng), p.sentiment, p.asks_back, list(p.signals), p.quality
                            )
                        )
                        for p in phrase_list
                        for _ in range(VARIANTS_PER_PHRASE)
                    ]
                )
                self.scripted[lang, direction, phase] = np.array(
                    [
                        add(
                            _analysed(
                                s.content_en if lang == vocab.LANG_EN else s.content_cn,
                                "positive",
                                s.content_cn.endswith("?"),
                                [],
                                _script_quality(i),
                                script=i,
                                event=EVENT_TYPES.index(s.event_type),
                            )
                        )
                        for i, s in enumerate(scripts)
                        if s.phase == phase and direction == phrases.OUTBOUND
                    ],
                    dtype=np.int64,
                )
            templates = phrases.CONTACT_EN if lang == vocab.LANG_EN else phrases.CONTACT_ZH
            for direction in (phrases.OUTBOUND, phrases.INBOUND):
                texts = [t for d, t in templates if d == direction]
                self.contacts[lang, direction] = np.array(
                    [
                        add(_analysed(_contact_details(rng.choice(texts), rng), "neutral", False, [], 5))
                        for _ in range(150)
                    ]
                )
        self.text = pa.array([e.text for e in entries], pa.string())
        self.sentiment = np.array([e.sentiment for e in entries], dtype=np.int8)
        self.asks_back = np.array([e.asks_back for e in entries], dtype=bool)
        self.quality = np.array([e.quality for e in entries], dtype=np.int64)
        self.script = np.array([e.script for e in entries], dtype=np.int64)
        self.event = np.array([e.event for e in entries], dtype=np.int64)
        self.has_signals = np.array([bool(e.signals) for e in entries], dtype=bool)
        self.has_risk = np.array([bool(e.risk) for e in entries], dtype=bool)
        self.signals = [e.signals for e in entries]
        self.risk = [e.risk for e in entries]
        self.keywords_json = pa.array(
            [json_text(e.keywords) if e.keywords else None for e in entries], pa.string()
        )
        self.signals_json = pa.array(
            [json_text(e.signals) if e.signals else None for e in entries], pa.string()
        )
        self.risk_json = pa.array([json_text(e.risk) if e.risk else None for e in entries], pa.string())


def _script_quality(index: int) -> int:
    """Base quality of the messages of script ``index`` (each message varies by one either way): some
    scripts work better than others, so the share of quality conversations per script (>= 7) spreads
    from about a third to all, as a script-performance mart should show."""
    return SCRIPT_BASE_QUALITIES[index % len(SCRIPT_BASE_QUALITIES)]


def _analysed(
    text: str,
    sentiment: str,
    asks_back: bool,
    signals: list[str],
    quality: int,
    script: int = -1,
    event: int = -1,
) -> PoolEntry:
    """What the CRM's text analysis finds in a message: known keywords and risk words."""
    keywords = list(dict.fromkeys(k for k in vocab.KEYWORDS if k in text))
    risk = [k for k in vocab.RISK_KEYWORDS if k in text.lower()]
    return PoolEntry(
        text, SENTIMENTS.index(sentiment), asks_back, keywords, signals, risk, quality, script, event
    )


def _fill(text: str, rng: random.Random) -> str:
    stock = rng.randrange(len(vocab.STOCKS))
    coin = rng.randrange(len(vocab.COINS))
    return text.format(
        stock=vocab.STOCKS[stock],
        stock_en=vocab.STOCKS_EN[stock],
        coin=vocab.COINS[coin],
        coin_en=vocab.COINS_EN[coin],
        amount=f"{rng.choice((500, 1000, 2000, 3000, 5000, 10000, 20000)):,}",
        pct=f"{rng.uniform(0.5, 12):.1f}",
        day=rng.choice(("周三", "周五", "周日")),
    )


def _contact_details(template: str, rng: random.Random) -> str:
    handle = f"{rng.choice(vocab.EN_FIRST).lower()}_{rng.randint(10, 999)}"
    return template.format(
        phone=fake_phone(rng.choice(vocab.PLACES), rng),
        wechat=f"{handle}{rng.choice(('', '_wx', '88'))}",
        email=f"{handle}@{rng.choice(('gmail.com', 'qq.com', '163.com', 'outlook.com'))}",
        handle=handle,
    )
