"""What redacted text holds instead of a contact detail: one placeholder per kind.

Every rule writes them, the tag rule keeps them as words, and tests and audits look for them.
"""

from __future__ import annotations

EMAIL = "[email]"
PHONE = "[phone]"
HANDLE = "[handle]"
BIRTHDATE = "[birthdate]"
