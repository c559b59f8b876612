"""What a caller may do: grants read from a token's claims, checked by name.

A grant is a list of selectors, like Mercure's topic selectors: an exact name
(``chat.lobby``) or a pattern where ``*`` stands for any run of characters
(``chat.*`` covers ``chat.lobby`` and ``chat.eu.lobby``; ``*`` covers
everything). Nothing else is special, so a selector can never be a regular
expression in disguise. A name no selector covers is refused.
"""

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

GRANTS_CLAIM: Final = "grants"
"""The token claim that holds the grants: ``{"join": [...], "publish": [...], ...}``."""

GRANT_KINDS: Final = ("join", "publish", "subscribe", "enqueue")
"""``join``: rooms it may enter; ``publish``: rooms it may send into;
``subscribe``: SSE event types it may read; ``enqueue``: task priorities it may use."""

MAX_SELECTORS: Final = 64
MAX_SELECTOR_LENGTH: Final = 128
# Concatenated, not an f-string: doubled braces would read as leftover Jinja.
_SELECTOR: Final = re.compile("^[A-Za-z0-9_.*-]{1," + str(MAX_SELECTOR_LENGTH) + "}$")
_CACHE_LIMIT: Final = 1024


class GrantError(ValueError):
    """The grants claim is malformed (the token is refused as invalid)."""


class Selectors:
    """A set of selectors, asked ``name in selectors``.

    Answers are cached per name (room names and event types repeat), so the
    check on a hot path, such as filtering every SSE event for a client, is a
    dictionary lookup.
    """

    __slots__ = ("_answers", "_pattern", "everything", "exact", "selectors")

    def __init__(self, selectors: Iterable[str]) -> None:
        """Compile ``selectors`` (already validated) into one matcher."""
        self.selectors = tuple(dict.fromkeys(selectors))
        self.everything = "*" in self.selectors
        self.exact = frozenset(s for s in self.selectors if "*" not in s)
        wildcards = [s for s in self.selectors if "*" in s]
        self._pattern = (
            re.compile("|".join(".*".join(map(re.escape, s.split("*"))) for s in wildcards))
            if wildcards
            else None
        )
        self._answers: dict[str, bool] = {}

    def __contains__(self, name: object) -> bool:
        """Whether a selector covers ``name``."""
        if self.everything:
            return True
        if not isinstance(name, str):
            return False
        answer = self._answers.get(name)
        if answer is None:
            answer = name in self.exact or (
                self._pattern is not None and self._pattern.fullmatch(name) is not None
            )
            if len(self._answers) < _CACHE_LIMIT:
                self._answers[name] = answer
        return answer

    @property
    def exact_only(self) -> bool:
        """Whether every selector is an exact name (``exact`` then says it all)."""
        return self._pattern is None

    def __bool__(self) -> bool:
        """Whether anything at all is granted."""
        return bool(self.selectors)

    def __repr__(self) -> str:
        """The selectors, for logs and test failures."""
        return f"Selectors({list(self.selectors)!r})"


@dataclass(frozen=True, slots=True)
class Grants:
    """Everything one caller may do."""

    join: Selectors
    publish: Selectors
    subscribe: Selectors
    enqueue: Selectors

    @classmethod
    def everything(cls) -> "Grants":
        """Grants of an API key: a server-side publisher or operator may do anything."""
        return cls(*(Selectors(["*"]) for _ in GRANT_KINDS))

    @classmethod
    def from_claim(cls, claim: object) -> "Grants":
        """Grants from a token's ``grants`` claim; missing kinds grant nothing."""
        if claim is None:
            claim = {}
        if not isinstance(claim, Mapping):
            raise GrantError(f"the {GRANTS_CLAIM!r} claim must be an object")
        unknown = sorted(set(claim) - set(GRANT_KINDS))
        if unknown:
            raise GrantError(f"unknown grant kinds {unknown}; expected some of {GRANT_KINDS}")
        return cls(*(Selectors(_selectors(kind, claim.get(kind))) for kind in GRANT_KINDS))

    def as_claim(self) -> dict[str, list[str]]:
        """The claim that gives these grants (kinds with no selector left out)."""
        claim: dict[str, list[str]] = {}
        for kind in GRANT_KINDS:
            selectors: Selectors = getattr(self, kind)
            if selectors:
                claim[kind] = list(selectors.selectors)
        return claim


def _selectors(kind: str, value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise GrantError(f"grant {kind!r} must be a list of strings")
    if len(value) > MAX_SELECTORS:
        raise GrantError(f"grant {kind!r} has more than {MAX_SELECTORS} selectors")
    bad = [item for item in value if not _SELECTOR.match(item)]
    if bad:
        raise GrantError(
            f"grant {kind!r}: selectors are 1 to {MAX_SELECTOR_LENGTH} of A-Z a-z 0-9 _ . - *"
        )
    return value
