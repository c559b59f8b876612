"""The authorization policy: who is calling, and whether they may.

Two kinds of caller:

- server-side publishers and operators present an **API key**
  (``Authorization: Bearer <key>`` or ``X-API-Key``); a key may do anything;
- end users (browsers, apps) present a **signed token** (JWT) whose
  ``grants`` claim says which rooms they may join or publish into, which event
  types they may read and which task priorities they may use.

Everything else is refused (deny by default). Each refusal is counted in
``auth_denied_total{reason}``; the reasons are a fixed set.
"""

import hashlib
import logging
import time
from dataclasses import dataclass
from typing import Final, Literal

from prometheus_client import Counter

from ..observability.metrics import Metrics
from ..settings import ENV_PREFIX, Settings
from .grants import Grants
from .keys import ApiKeys
from .limits import ConnectionLimits
from .origin import OriginPolicy
from .tokens import MAX_TOKEN_LENGTH, TokenError, TokenVerifier

logger = logging.getLogger(__name__)

ACCESS_TOKEN_PARAM: Final = "access_token"
"""Query parameter carrying a token for clients that cannot set headers
(a browser's ``EventSource``); the logs redact it."""

DenialReason = Literal["missing", "invalid", "expired", "forbidden", "origin", "limited"]
DENIAL_REASONS: Final[tuple[DenialReason, ...]] = (
    "missing",
    "invalid",
    "expired",
    "forbidden",
    "origin",
    "limited",
)

_STATUS: Final[dict[DenialReason, int]] = {
    "missing": 401,
    "invalid": 401,
    "expired": 401,
    "forbidden": 403,
    "origin": 403,
    "limited": 429,
}


class Denied(Exception):
    """A refusal: ``reason`` (one of ``DENIAL_REASONS``), a safe ``detail``, an HTTP status."""

    def __init__(self, reason: DenialReason, detail: str) -> None:
        """``detail`` never contains a credential."""
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.status = _STATUS[reason]


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller.

    ``id`` is ``key:<digest prefix>`` for an API key and ``sub:<subject>`` for
    a token, so a token's subject can never pass for a key.
    """

    id: str
    kind: Literal["key", "token", "development"]
    grants: Grants
    expires_at: float | None = None

    @property
    def is_operator(self) -> bool:
        """Whether this is an API key (or the development switch): not rate limited."""
        return self.kind != "token"

    @property
    def owner_tag(self) -> str:
        """A short, stable tag of ``id`` that task ids carry to name their owner."""
        return hashlib.sha256(self.id.encode()).hexdigest()[:16]


DEVELOPMENT_PRINCIPAL: Final = Principal("development", "development", Grants.everything())


def configuration_problem(settings: Settings) -> str | None:
    """Why this service would refuse every caller, or ``None`` when it can authorize someone."""
    if settings.auth_disabled:
        return None
    if settings.api_keys or settings.jwt_secret or settings.jwt_public_key or settings.jwt_jwks_url:
        return None
    return (
        f"no API key and no token verifier configured: set {ENV_PREFIX}API_KEYS and/or "
        f"{ENV_PREFIX}JWT_SECRET ({ENV_PREFIX}JWT_PUBLIC_KEY or {ENV_PREFIX}JWT_JWKS_URL), "
        f"or {ENV_PREFIX}AUTH_DISABLED=true for local development only"
    )


class Auth:
    """The app's verifiers, origin policy, per-client connection counts and denial metric."""

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        """Set up from the settings; a malformed public key fails here, at startup."""
        self.disabled = settings.auth_disabled
        self.keys = ApiKeys(settings.api_keys)
        has_verifier = settings.jwt_secret or settings.jwt_public_key or settings.jwt_jwks_url
        self.tokens = TokenVerifier(settings) if has_verifier else None
        self.origins = OriginPolicy(settings.cors_allow_origins)
        self.connections = ConnectionLimits(settings.client_max_connections)
        self.ops_require_key = settings.ops_require_key and not self.disabled
        self.denied = Counter(
            "auth_denied",
            "Requests and handshakes refused by authorization, by reason.",
            ["reason"],
            registry=metrics.owner,
        )
        for reason in DENIAL_REASONS:
            self.denied.labels(reason)
        if self.disabled:
            logger.warning(
                "AUTHORIZATION IS DISABLED (%sAUTH_DISABLED=true): every caller may do "
                "everything. Never run like this outside local development.",
                ENV_PREFIX,
            )
        elif not self.keys and self.tokens is None:
            logger.warning("no API key or token verifier configured: every caller is refused")

    def deny(self, reason: DenialReason, detail: str) -> Denied:
        """Count a refusal and return it to raise."""
        self.denied.labels(reason).inc()
        return Denied(reason, detail)

    async def authenticate(self, credential: str | None, *, tokens: bool = True) -> Principal:
        """The caller behind ``credential`` (an API key, or a token when ``tokens``)."""
        if self.disabled:
            return DEVELOPMENT_PRINCIPAL
        if not credential:
            raise self.deny(
                "missing",
                "credentials required: an API key or a token"
                if tokens
                else "an API key is required",
            )
        if len(credential) > MAX_TOKEN_LENGTH:
            raise self.deny("invalid", "the credential is too long")
        key_id = self.keys.identify(credential)
        if key_id is not None:
            return Principal(key_id, "key", Grants.everything())
        if not tokens or self.tokens is None:
            raise self.deny("invalid", "unknown API key")
        try:
            verified = await self.tokens.verify(credential)
        except TokenError as error:
            raise self.deny("expired" if error.expired else "invalid", error.detail) from None
        return Principal(f"sub:{verified.subject}", "token", verified.grants, verified.expires_at)

    def check_origin(self, origin: str | None, host: str | None) -> None:
        """Refuse a browser handshake from an origin that is not allowed."""
        if not self.disabled and not self.origins.allows(origin, host):
            raise self.deny("origin", "this origin may not connect")

    def check_expiry(self, principal: Principal) -> None:
        """Refuse a principal whose token expired since it was checked."""
        if principal.expires_at is not None and principal.expires_at <= time.time():
            raise self.deny("expired", "the token has expired")
