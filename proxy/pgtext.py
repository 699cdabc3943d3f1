"""What PostgreSQL's `text` (and jsonb strings) can hold.

Python strings can carry NUL and unpaired surrogates; Postgres text cannot
hold NUL and stores UTF-8 only. Both the request parser and the token's
claims are checked with this before anything reaches the database.
"""

from __future__ import annotations


def storable(text: str) -> bool:
    if "\0" in text:
        return False
    if text.isascii():
        return True
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True
