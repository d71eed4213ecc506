"""Short commit links (``${commit.tinyurl}``) that the platform itself serves.

A code is computed from what every broker already has — the repository's owner
and slug and the commit's node — so no call to the platform is needed to make
one, and the platform resolves it without a table of its own: the last
:data:`NODE_CHARS` characters are the node's first 12 hex digits in base 62
(the platform looks the commit up by that prefix), the first :data:`TAG_CHARS`
a hash of ``owner/slug`` (which repository's commit it is).

Shared by the SDK (inside the sandbox) and ``brokerage.platform.web.shortlinks``
(the ``GET /c/<code>`` route): standard library only.
"""

from __future__ import annotations

import hashlib

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
TAG_CHARS = 3
"""characters naming the repository (62**3 buckets; a clash also needs a node clash)"""
NODE_CHARS = 9
"""characters carrying the node's first 48 bits (62**9 > 2**48)"""
NODE_HEX = 12
"""hex digits of the node a code carries (Bitbucket's short ``node``)"""
CODE_CHARS = TAG_CHARS + NODE_CHARS


def base62(number: int, width: int) -> str:
    digits = []
    for _ in range(width):
        number, digit = divmod(number, 62)
        digits.append(ALPHABET[digit])
    return "".join(reversed(digits))


def from_base62(text: str) -> int:
    number = 0
    for char in text:
        number = number * 62 + ALPHABET.index(char)
    return number


def repository_tag(owner: str, slug: str) -> str:
    digest = hashlib.sha256(f"{owner}/{slug}".lower().encode()).digest()
    return base62(int.from_bytes(digest[:8], "big") % 62**TAG_CHARS, TAG_CHARS)


def short_code(owner: str, slug: str, node: str) -> str:
    """The code for commit ``node`` (12 or 40 hex digits) of ``owner/slug``."""
    prefix = node[:NODE_HEX].lower()
    if len(prefix) != NODE_HEX or any(c not in "0123456789abcdef" for c in prefix):
        raise ValueError(f"not a commit node: {node!r}")
    return repository_tag(owner, slug) + base62(int(prefix, 16), NODE_CHARS)


def parse_code(code: str) -> tuple[str, str]:
    """``(repository tag, 12-hex node prefix)`` of a code; ValueError when malformed."""
    if len(code) != CODE_CHARS or any(c not in ALPHABET for c in code):
        raise ValueError(f"not a short link code: {code!r}")
    node = from_base62(code[TAG_CHARS:])
    if node >= 16**NODE_HEX:
        raise ValueError(f"not a short link code: {code!r}")
    return code[:TAG_CHARS], f"{node:0{NODE_HEX}x}"


def short_url(canon_url: str, owner: str, slug: str, node: str) -> str:
    return f"{canon_url.rstrip('/')}/c/{short_code(owner, slug, node)}"
