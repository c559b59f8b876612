"""``python -m <package> token`` and ``python -m <package> key``: credentials for development.

``token`` signs a token with the configured ``JWT_SECRET`` (HS256); in
production your identity provider issues tokens with the same claims.
``key`` prints a new API key and the digest to configure instead of it.
"""

import argparse
import sys

from ..settings import ENV_PREFIX, Settings
from .grants import GRANT_KINDS, GrantError, Grants
from .keys import digest_of, new_key
from .tokens import mint


def token_command(settings: Settings, argv: list[str]) -> int:
    """Print a signed token for the subject and grants named on the command line."""
    parser = argparse.ArgumentParser(
        prog="python -m <package> token",
        description="Print an HS256 token signed with the configured JWT secret.",
    )
    parser.add_argument("--sub", required=True, help="the subject (user id)")
    for kind in GRANT_KINDS:
        parser.add_argument(
            f"--{kind}",
            action="append",
            default=[],
            metavar="SELECTOR",
            help=f"grant {kind!r} (repeatable; '*' matches any characters, e.g. 'chat.*')",
        )
    parser.add_argument("--ttl", type=float, default=3600.0, help="seconds it is valid")
    args = parser.parse_args(argv)
    if settings.jwt_secret is None:
        print(
            f"{ENV_PREFIX}JWT_SECRET is not set: nothing to sign the token with.", file=sys.stderr
        )
        return 2
    if args.ttl <= 0:
        print("--ttl must be positive.", file=sys.stderr)
        return 2
    try:
        grants = Grants.from_claim({kind: getattr(args, kind) for kind in GRANT_KINDS})
    except GrantError as error:
        print(f"Invalid grant: {error}", file=sys.stderr)
        return 2
    token = mint(
        settings.jwt_secret.get_secret_value(),
        args.sub,
        grants,
        ttl=args.ttl,
        audience=settings.jwt_audience,
        issuer=settings.jwt_issuer,
    )
    print(token)
    return 0


def key_command() -> int:
    """Print a new API key and its digest."""
    key = new_key()
    print(f"key:    {key}")
    print(f"digest: {digest_of(key)}")
    print(f"Give the key to the client; configure {ENV_PREFIX}API_KEYS with either value.")
    return 0
