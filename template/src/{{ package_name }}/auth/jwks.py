"""The signing keys of a token issuer, fetched from its JWKS URL and kept.

Fetches are bounded (a timeout) and rare: the set is refetched when it is
older than ``max_age``, or when a token names a key id the set does not have
(the issuer rotated its keys), but never more often than ``min_interval``, so
tokens with made-up key ids cannot turn the service into a flood of requests
to the issuer. While the issuer does not answer, the keys already fetched
keep working.
"""

import asyncio
import json
import logging
import time
import urllib.request
from typing import Any, Final

import jwt

logger = logging.getLogger(__name__)

MAX_JWKS_BYTES: Final = 1_048_576


class KeyUnavailableError(Exception):
    """No key can check this token now: unknown key id, or the issuer does not answer."""


class JwksCache:
    """Keys by id from one JWKS URL."""

    def __init__(
        self, url: str, *, timeout: float, max_age: float, min_interval: float = 30.0
    ) -> None:
        """Nothing is fetched until a token needs a key."""
        self.url = url
        self.timeout = timeout
        self.max_age = max_age
        self.min_interval = min_interval
        self._keys: dict[str | None, jwt.PyJWK] = {}
        self._fetched_at = float("-inf")
        self._attempted_at = float("-inf")
        self._lock = asyncio.Lock()

    async def key(self, kid: str | None) -> jwt.PyJWK:
        """The key with id ``kid`` (a set of one key also serves tokens without ``kid``)."""
        now = time.monotonic()
        found = self._lookup(kid)
        stale = now - self._fetched_at > self.max_age
        if found is not None and not stale:
            return found
        if now - self._attempted_at >= self.min_interval or (found is None and not self._keys):
            await self._refresh()
            found = self._lookup(kid)
        if found is None:
            raise KeyUnavailableError(
                "the token's key id is not in the issuer's key set"
                if self._keys
                else "the issuer's key set is unavailable"
            )
        return found

    def _lookup(self, kid: str | None) -> jwt.PyJWK | None:
        if kid is None and len(self._keys) == 1:
            return next(iter(self._keys.values()))
        return self._keys.get(kid)

    async def _refresh(self) -> None:
        async with self._lock:
            # Another caller may have refreshed while this one waited for the lock.
            if time.monotonic() - self._attempted_at < 1.0:
                return
            self._attempted_at = time.monotonic()
            try:
                async with asyncio.timeout(self.timeout):
                    document = await asyncio.to_thread(self._fetch)
                key_set = jwt.PyJWKSet.from_dict(document)
            except (TimeoutError, OSError, ValueError, jwt.PyJWTError) as error:
                # The URL may carry credentials; the log names only the failure.
                logger.warning(
                    "JWKS fetch failed; keeping %d known keys",
                    len(self._keys),
                    extra={"error": type(error).__name__},
                )
                return
            self._keys = {key.key_id: key for key in key_set.keys}
            self._fetched_at = time.monotonic()

    def _fetch(self) -> dict[str, Any]:
        request = urllib.request.Request(self.url, headers={"Accept": "application/json"})
        with urllib.request.urlopen(request, timeout=self.timeout) as response:
            body = response.read(MAX_JWKS_BYTES + 1)
        if len(body) > MAX_JWKS_BYTES:
            raise ValueError("the key set is too large")
        document = json.loads(body)
        if not isinstance(document, dict):
            raise ValueError("a key set is a JSON object")
        return document
