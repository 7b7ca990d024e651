"""String helpers shared by the API, notifications and repositories."""

from __future__ import annotations

import re
import unicodedata

_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[a-z]{2,}$")
_SLUG_STRIP = re.compile(r"[^a-z0-9]+")


def normalise_email(email: str) -> str:
    """Lower-cases and strips an address; raises ValueError if it is not one."""
    cleaned = email.strip().lower()
    if not _EMAIL_RE.match(cleaned):
        raise ValueError(f"not an e-mail address: {email!r}")
    return cleaned


def mask_email(email: str) -> str:
    """``alice@example.com`` -> ``a***@example.com``, for messages and logs."""
    local, _, domain = email.partition("@")
    if not domain:
        return "***"
    return f"{local[:1]}***@{domain}"


def slugify(text: str) -> str:
    normalised = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return _SLUG_STRIP.sub("-", normalised.lower()).strip("-")


def truncate(text: str, limit: int, ellipsis: str = "...") -> str:
    if len(text) <= limit:
        return text
    return text[: max(0, limit - len(ellipsis))] + ellipsis


def plural(count: int, word: str, suffix: str = "s") -> str:
    return f"{count} {word}{'' if count == 1 else suffix}"
