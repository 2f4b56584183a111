"""Reading a rendered report back: every number it shows, by its data-metric attribute."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal
from html.parser import HTMLParser


@dataclass
class Number:
    metric: str
    value: str  # data-value: the exact value
    text: str = ""  # what the reader sees
    attributes: dict = field(default_factory=dict)
    row: dict = field(default_factory=dict)  # data-* of the enclosing <tr>


class _Collector(HTMLParser):
    def __init__(self):
        super().__init__()
        self.numbers: list[Number] = []
        self.rows: list[dict] = [{}]
        self.open: list[Number | None] = []
        self.images: list[str] = []

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "tr":
            self.rows.append({k: v for k, v in attributes.items() if k.startswith("data-")})
        if tag == "img":
            self.images.append(attributes.get("src", ""))
        if tag in ("br", "img", "meta"):
            return
        number = None
        if "data-metric" in attributes and "data-value" in attributes:
            number = Number(
                attributes["data-metric"], attributes["data-value"], attributes=attributes, row=self.rows[-1]
            )
            self.numbers.append(number)
        self.open.append(number)

    def handle_endtag(self, tag):
        if tag == "tr" and len(self.rows) > 1:
            self.rows.pop()
        if tag in ("br", "img", "meta"):
            return
        if self.open:
            self.open.pop()

    def handle_data(self, data):
        for number in self.open:
            if number is not None:
                number.text += data


def numbers(html: str) -> list[Number]:
    collector = _Collector()
    collector.feed(html)
    return collector.numbers


def images(html: str) -> list[str]:
    collector = _Collector()
    collector.feed(html)
    return collector.images


def by_metric(html: str) -> dict[str, Number]:
    """Numbers that occur once (headline, changes, funnel, footer), keyed by metric."""
    return {
        n.metric: n
        for n in numbers(html)
        if not n.row.get("data-employee") and not n.row.get("data-customer")
    }


def shown_value(text: str) -> Decimal | None:
    """The displayed text as a number ('1,234.50' -> 1234.50, '12.00%' -> 12.00, '+3.10pp' -> 3.10)."""
    cleaned = re.sub(r"[,%\s]|pp$", "", text.strip())
    return None if cleaned in ("–", "") else Decimal(cleaned)
