"""The PDF attachment: WeasyPrint prints the very HTML that is mailed (images inlined as data: URIs).

WeasyPrint finds fonts through fontconfig, so Chinese needs a CJK font installed system-wide
(fonts-noto-cjk, installed by devstack/system-packages.sh); the template's font stack names it first.
"""

from __future__ import annotations

import logging

# WeasyPrint logs every CSS property it does not support (mail-client hacks are full of them).
logging.getLogger("weasyprint").setLevel(logging.ERROR)
logging.getLogger("fontTools").setLevel(logging.WARNING)


def html_to_pdf(html: str) -> bytes:
    import weasyprint  # imported late: loading Pango costs ~0.5 s, and only PDF rendering needs it

    return weasyprint.HTML(string=html, base_url=None).write_pdf()
