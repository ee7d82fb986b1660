"""Backend URLs as people see them: in log lines, error messages and the start banner.

Rule: a URL's password never leaves in text; `redacted_url` puts `***` in its place and
keeps the rest as written (scheme, user, host, port, path). A URL too broken to parse is cut
short instead, since where its password is cannot be known.
"""

from __future__ import annotations

from typing import Final
from urllib.parse import urlsplit

UNPARSED_LIMIT: Final = 60  # characters of a URL that cannot be parsed


def redacted_url(url: str, limit: int | None = None) -> str:
    """`url` without its password, cut to `limit` characters when one is given."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url[:UNPARSED_LIMIT]
    if parts.password is not None:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
        url = parts._replace(netloc=netloc).geturl()
    return url if limit is None else url[:limit]
