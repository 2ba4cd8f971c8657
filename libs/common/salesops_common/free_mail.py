"""Free / consumer e-mail providers (gmail.com, yahoo.co.uk, ...), shared by ingest and routing.

An address or domain at one of these says nothing about the person's company: ingest never
derives a company domain from it, and routing never matches an account by it. The list ships
as package data (``free_mail_domains.txt``) and is read once, at import.
"""

from __future__ import annotations

from importlib import resources

__all__ = ["FREE_MAIL_DOMAINS", "is_free_mail_domain"]


def _load() -> frozenset[str]:
    text = resources.files(__package__).joinpath("free_mail_domains.txt").read_text("utf-8")
    return frozenset(
        line.strip().lower()
        for line in text.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    )


FREE_MAIL_DOMAINS: frozenset[str] = _load()


def is_free_mail_domain(domain: str) -> bool:
    """Whether a registrable domain (lower-case, as ingest stores it) belongs to a free /
    consumer e-mail provider."""
    return domain in FREE_MAIL_DOMAINS
