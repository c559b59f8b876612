"""Signed tokens of end users (JWT, checked with PyJWT).

One verifier per app, set up from the settings: HS256 with a shared secret,
or RS256/ES256 with a public key or the issuer's JWKS URL. Only the algorithms
that fit the configured keys are accepted, so a token cannot pick a weaker one
(``alg: none``, or HS256 signed with a public key). ``sub`` and ``exp`` are
required; ``aud`` and ``iss`` are checked when configured.
"""

import base64
import functools
import json
import time
from dataclasses import dataclass
from typing import Any, Final

import jwt
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from ..settings import Settings
from .grants import GRANTS_CLAIM, GrantError, Grants
from .jwks import JwksCache, KeyUnavailableError

MAX_TOKEN_LENGTH: Final = 8192
"""Longer credentials are refused before any parsing."""

HMAC_ALGORITHMS: Final = ("HS256",)
PUBLIC_KEY_ALGORITHMS: Final = ("RS256", "ES256")


class TokenError(Exception):
    """A token that does not verify; ``expired`` tells an expired one apart."""

    def __init__(self, detail: str, *, expired: bool = False) -> None:
        """``detail`` is safe to show: it never contains the token."""
        super().__init__(detail)
        self.detail = detail
        self.expired = expired


@dataclass(frozen=True, slots=True)
class VerifiedToken:
    """What a valid token says: who, until when, and what they may do."""

    subject: str
    expires_at: float
    grants: Grants


class TokenVerifier:
    """Checks tokens against the configured secret, public key or JWKS."""

    def __init__(self, settings: Settings) -> None:
        """Load the keys the settings name (a bad public key fails here, at startup)."""
        self._secret = (
            settings.jwt_secret.get_secret_value() if settings.jwt_secret is not None else None
        )
        self._public_key = (
            load_pem_public_key(settings.jwt_public_key.encode())
            if settings.jwt_public_key
            else None
        )
        self._jwks = (
            JwksCache(
                settings.jwt_jwks_url,
                timeout=settings.jwt_jwks_timeout,
                max_age=settings.jwt_jwks_max_age,
            )
            if settings.jwt_jwks_url
            else None
        )
        self._audience = settings.jwt_audience
        self._issuer = settings.jwt_issuer
        self._leeway = settings.jwt_leeway
        algorithms: list[str] = []
        if self._secret is not None:
            algorithms += HMAC_ALGORITHMS
        if self._public_key is not None or self._jwks is not None:
            algorithms += PUBLIC_KEY_ALGORITHMS
        self.algorithms = tuple(algorithms)

    async def verify(self, token: str) -> VerifiedToken:
        """Check signature and claims; ``TokenError`` says what is wrong."""
        if len(token) > MAX_TOKEN_LENGTH:
            raise TokenError(f"the token is longer than {MAX_TOKEN_LENGTH} characters")
        header = _unverified_header(token)
        algorithm = header.get("alg")
        if algorithm not in self.algorithms:
            raise TokenError(f"algorithm {algorithm!r} is not accepted here")
        key = await self._key_for(algorithm, header.get("kid"))
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
                options={"require": ["sub", "exp"]},
            )
        except jwt.ExpiredSignatureError:
            raise TokenError("the token has expired", expired=True) from None
        except jwt.ImmatureSignatureError:
            raise TokenError("the token is not valid yet") from None
        except jwt.InvalidAudienceError:
            raise TokenError("wrong audience") from None
        except jwt.InvalidIssuerError:
            raise TokenError("wrong issuer") from None
        except jwt.MissingRequiredClaimError as error:
            raise TokenError(f"the token has no {error.claim!r} claim") from None
        except jwt.InvalidSignatureError:
            raise TokenError("bad signature") from None
        except jwt.PyJWTError:
            raise TokenError("malformed token") from None
        subject = claims["sub"]
        if not isinstance(subject, str) or not 1 <= len(subject) <= 256:
            raise TokenError("'sub' must be a string of 1 to 256 characters")
        try:
            grants = _grants(json.dumps(claims.get(GRANTS_CLAIM), sort_keys=True))
        except GrantError as error:
            raise TokenError(str(error)) from None
        return VerifiedToken(subject, float(claims["exp"]), grants)

    async def _key_for(self, algorithm: str, kid: object) -> Any:
        if algorithm in HMAC_ALGORITHMS:
            return self._secret
        if self._jwks is not None and (kid is not None or self._public_key is None):
            if kid is not None and not isinstance(kid, str):
                raise TokenError("'kid' must be a string")
            try:
                return await self._jwks.key(kid)
            except KeyUnavailableError as error:
                raise TokenError(str(error)) from None
        return self._public_key


def _unverified_header(token: str) -> dict[str, Any]:
    """The token's header, read only to pick the algorithm and key.

    ``jwt.decode`` checks the whole token afterwards. PyJWT's own
    ``get_unverified_header`` validates and decodes every segment, as
    ``jwt.decode`` then does again: a quarter of each token check
    (``bench/auth.py``, WebSocket handshakes).
    """
    segment = token.partition(".")[0]
    try:
        header = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, TypeError):
        raise TokenError("not a JWT") from None
    if not isinstance(header, dict):
        raise TokenError("not a JWT")
    return header


@functools.lru_cache(maxsize=1024)
def _grants(claim: str) -> Grants:
    # Tokens of one kind carry the same grants: one shared object (with its
    # answer cache) instead of one per connection, which every idle member and
    # stream would hold (``bench/scale.py --breakdown``).
    return Grants.from_claim(json.loads(claim))


def mint(
    secret: str,
    subject: str,
    grants: Grants,
    *,
    ttl: float,
    audience: str | None = None,
    issuer: str | None = None,
) -> str:
    """An HS256 token for ``subject`` with ``grants``, valid ``ttl`` seconds from now.

    For development and tests (``python -m <package> token``); in production
    your identity provider issues the tokens.
    """
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": subject,
        "iat": now,
        "exp": now + int(ttl),
        GRANTS_CLAIM: grants.as_claim(),
    }
    if audience is not None:
        claims["aud"] = audience
    if issuer is not None:
        claims["iss"] = issuer
    return jwt.encode(claims, secret, algorithm=HMAC_ALGORITHMS[0])
