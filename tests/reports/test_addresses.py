"""Recipient addresses on the wire: an internationalised domain in its IDNA 2008 (UTS #46) form."""

from __future__ import annotations

from ingestion.reports.addresses import ascii_domain, shape_problem


def test_a_domain_with_sharp_s_keeps_it_as_idna_2008_does():
    """IDNA 2003 (Python's codec) maps "ß" to "ss": straße.de would become strasse.de, another
    registrable domain, and the report would go to whoever owns that."""
    assert ascii_domain("anna@straße.de") == "anna@xn--strae-oqa.de"
    assert ascii_domain("boss@例子.中国") == "boss@xn--fsqu00a.xn--fiqs8s"
    assert ascii_domain("anna@example.com") == "anna@example.com"


def test_a_domain_without_an_idna_form_is_no_address():
    assert shape_problem("boss@例子..中国") is not None
    assert shape_problem("boss@例子.中国") is None
