"""The combinations of answers avanzada supports, and those copier must refuse.

Kept as data, the way cookiecutter-django's generation tests keep
``SUPPORTED_COMBINATIONS``: nothing, the defaults, each feature alone, all of
them (in memory and on Redis), and the pairs whose features interact. Every
feature named here is checked against copier.yml, and "each feature alone" is
generated from it, so this list cannot drift from the questions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from avanzada.questions import FEATURES_QUESTION, Questions, load_questions

Answers = dict[str, Any]


@dataclass(frozen=True)
class Unsupported:
    """Answers copier's validators must refuse, and part of the expected message."""

    answers: Answers
    message: str


# Pairs (and small groups) whose features interact: shared Redis bus, the
# database under the queue or the cache, the proxy in front of realtime routes.
_INTERACTING: dict[str, Answers] = {
    "rooms+redis": {"features": ["rooms"], "scale_out": "redis", "workers": 2},
    "sse+redis": {"features": ["sse"], "scale_out": "redis", "workers": 2},
    "queue+redis": {"features": ["queue"], "scale_out": "redis", "workers": 2},
    "cache+redis-backend": {"features": ["cache"], "cache_backend": "redis"},
    "queue+postgres": {"features": ["queue", "postgres"]},
    "cache+postgres": {"features": ["cache", "postgres"]},
    "nginx+docker": {"features": ["nginx", "docker"]},
    "rooms+nginx": {"features": ["rooms", "nginx"]},
    "sse+nginx": {"features": ["sse", "nginx"]},
    "rooms-batching": {"features": ["rooms"], "rooms_batching": True},
}

_UNSUPPORTED: dict[str, Unsupported] = {
    "workers-3+rooms-memory": Unsupported(
        {"features": ["rooms"], "scale_out": "memory", "workers": 3},
        "3 workers cannot share in-memory rooms",
    ),
    "upstreams-3+rooms-memory": Unsupported(
        {"features": ["rooms", "nginx"], "scale_out": "memory", "nginx_upstreams": 3},
        "3 nginx upstreams need Redis scale-out",
    ),
    "workers-0": Unsupported({"features": [], "workers": 0}, "Workers must be between 1 and 64"),
    "bad-package-name": Unsupported(
        {"package_name": "My-Service"}, "is not a valid Python package name"
    ),
    "package-shadows-dependency": Unsupported(
        {"package_name": "fastapi"}, "would shadow a Python keyword or a dependency"
    ),
    "bad-slug": Unsupported({"project_slug": "My Service"}, "is not a valid slug"),
    "package-name-too-long": Unsupported({"package_name": "p" * 41}, "is too long"),
    "redis-scale-out-without-sharing": Unsupported(
        {"features": ["cache", "postgres"], "scale_out": "redis"},
        "Redis scale-out shares rooms, SSE history and the queue, and none of them is chosen",
    ),
    "unknown-feature": Unsupported(
        {"features": ["bogus"]}, "Invalid choice for 'features': 'bogus' is not in"
    ),
}

#: Names of unsupported combinations whose features are deliberately unknown.
_DELIBERATELY_UNKNOWN = frozenset({"unknown-feature"})


class CombinationError(ValueError):
    """A combination names something copier.yml does not have."""


def _check(name: str, answers: Mapping[str, Any], questions: Questions) -> None:
    """Raise CombinationError if ``answers`` use unknown questions or features."""
    unknown = sorted(set(answers) - set(questions.askable_names))
    if unknown:
        raise CombinationError(f"combination {name!r} answers unknown questions: {unknown}")
    features = answers.get(FEATURES_QUESTION, [])
    missing = [f for f in features if f not in questions.feature_values]
    if missing:
        raise CombinationError(
            f"combination {name!r} uses features missing from copier.yml: {missing}"
        )


def supported(questions: Questions | None = None) -> dict[str, Answers]:
    """Every supported combination: name -> answers (copier defaults fill the rest)."""
    questions = questions if questions is not None else load_questions()
    every = questions.feature_values
    combos: dict[str, Answers] = {
        "none": {"features": []},
        "default": {},
    }
    for feature in every:
        combos[feature] = {"features": [feature]}
    combos["all-memory"] = {
        "features": list(every),
        "scale_out": "memory",
        "workers": 1,
        "nginx_upstreams": 1,
    }
    combos["all-redis"] = {
        "features": list(every),
        "scale_out": "redis",
        "workers": 2,
        "nginx_upstreams": 2,
        "cache_backend": "redis",
        "rooms_batching": True,
    }
    combos.update(_INTERACTING)
    for name, answers in combos.items():
        _check(name, answers, questions)
    return {name: dict(answers) for name, answers in combos.items()}


def unsupported(questions: Questions | None = None) -> dict[str, Unsupported]:
    """Combinations copier must refuse: name -> answers and expected message."""
    questions = questions if questions is not None else load_questions()
    for name, case in _UNSUPPORTED.items():
        if name in _DELIBERATELY_UNKNOWN:
            continue
        _check(name, case.answers, questions)
    return dict(_UNSUPPORTED)
