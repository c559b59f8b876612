"""API keys of server-side publishers and operators.

Keys are configured as secrets and kept only as SHA-256 digests: a setting may
hold the key itself or its digest (``sha256:<64 hex digits>``, what
``python -m <package> key`` prints), so the digest form can sit in a config
store without being usable. A presented key is hashed once and compared with
every configured digest in constant time; several keys at once allow rotation.
"""

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from typing import Final

from pydantic import SecretStr

DIGEST_PREFIX: Final = "sha256:"
_DIGEST: Final = re.compile(r"^sha256:[0-9a-f]{64}$")
MIN_KEY_LENGTH: Final = 24
"""Shorter keys are refused at startup: an API key must not be guessable."""

MAX_KEY_LENGTH: Final = 512

MIN_SECRET_LENGTH: Final = 32
"""Shortest JWT secret accepted (HS256 wants at least 256 bits of key)."""


def digest_of(key: str) -> str:
    """The ``sha256:<hex>`` form of ``key``."""
    return DIGEST_PREFIX + hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    """A fresh random key (256 bits)."""
    return secrets.token_urlsafe(32)


def check_configured_key(value: str) -> str:
    """Validate one configured key or digest; the message never contains the value."""
    if value != value.strip():
        raise ValueError("an API key must not start or end with whitespace")
    if value.startswith(DIGEST_PREFIX):
        if not _DIGEST.match(value):
            raise ValueError("a digest must be 'sha256:' followed by 64 lowercase hex digits")
        return value
    if not MIN_KEY_LENGTH <= len(value) <= MAX_KEY_LENGTH:
        raise ValueError(f"an API key must be {MIN_KEY_LENGTH} to {MAX_KEY_LENGTH} characters")
    return value


class ApiKeys:
    """The configured keys, as digests."""

    __slots__ = ("_digests",)

    def __init__(self, keys: Iterable[SecretStr]) -> None:
        """Hash the keys that are not digests already."""
        digests = []
        for key in keys:
            value = key.get_secret_value()
            digest = value if value.startswith(DIGEST_PREFIX) else digest_of(value)
            digests.append(bytes.fromhex(digest.removeprefix(DIGEST_PREFIX)))
        self._digests = tuple(digests)

    def __bool__(self) -> bool:
        """Whether any key is configured."""
        return bool(self._digests)

    def identify(self, presented: str) -> str | None:
        """The id (``key:<first 8 hex digits of its digest>``) of a matching key, else ``None``.

        Every configured digest is compared, match or not, so the time taken
        does not say which key, or how much of one, was right.
        """
        if not presented or len(presented) > MAX_KEY_LENGTH:
            return None
        candidate = hashlib.sha256(presented.encode()).digest()
        found: bytes | None = None
        for digest in self._digests:
            if hmac.compare_digest(candidate, digest):
                found = digest
        return None if found is None else f"key:{found.hex()[:8]}"
