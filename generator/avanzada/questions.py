"""The questions of ``copier.yml``, read so the CLI never repeats them.

``copier.yml`` is the single source of truth for the feature list: the
``features`` multiselect names each feature (label -> value), its default
selection, and every follow-up question says which feature it belongs to in
its ``when:`` (``"{{ 'rooms' in features }}"``). This module parses that file
with PyYAML and answers the questions the CLI, the combinations and the tests
ask about it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from avanzada.template_source import template_root

#: Name of the multiselect question that lists the features.
FEATURES_QUESTION = "features"

# A follow-up names its feature as `'rooms' in features` inside `when:`.
_WHEN_FEATURE = re.compile(r"""['"]([\w.-]+)['"]\s+in\s+""" + FEATURES_QUESTION + r"\b")


class QuestionsError(ValueError):
    """copier.yml is missing or does not have the shape avanzada relies on."""


class UnknownFeatureError(ValueError):
    """A feature value that copier.yml does not offer."""

    def __init__(self, feature: str, known: Iterable[str]) -> None:
        self.feature = feature
        self.known = tuple(known)
        super().__init__(f"unknown feature {feature!r}; choose from {', '.join(self.known)}")


@dataclass(frozen=True)
class Question:
    """One question of copier.yml, as written there (Jinja left unrendered)."""

    name: str
    type: str = "str"
    help: str = ""
    default: Any = None
    #: label -> value; empty for a free answer.
    choices: Mapping[str, Any] = field(default_factory=dict)
    multiselect: bool = False
    #: The raw `when:` (True when absent).
    when: Any = True
    validator: str | None = None

    @property
    def computed(self) -> bool:
        """True for a value copier computes and never asks (``when: false``)."""
        return self.when is False or (
            isinstance(self.when, str) and self.when.strip().lower() == "false"
        )

    @property
    def feature(self) -> str | None:
        """The feature this question follows up on, if its ``when:`` names one."""
        if not isinstance(self.when, str):
            return None
        match = _WHEN_FEATURE.search(self.when)
        return match.group(1) if match else None


@dataclass(frozen=True)
class Questions:
    """All questions of a copier.yml, in file order, plus the settings used here."""

    questions: tuple[Question, ...]
    answers_file: str = ".copier-answers.yml"

    @property
    def names(self) -> list[str]:
        """Every question name, in the order copier asks them."""
        return [q.name for q in self.questions]

    @property
    def askable_names(self) -> list[str]:
        """Names a user may answer (``--data``); computed values excluded."""
        return [q.name for q in self.questions if not q.computed]

    def get(self, name: str) -> Question:
        """Return the question called ``name`` (KeyError when there is none)."""
        for question in self.questions:
            if question.name == name:
                return question
        raise KeyError(name)

    @property
    def feature_question(self) -> Question:
        """The multiselect question listing the features."""
        try:
            question = self.get(FEATURES_QUESTION)
        except KeyError:
            raise QuestionsError(f"copier.yml has no {FEATURES_QUESTION!r} question") from None
        if not question.multiselect or not question.choices:
            raise QuestionsError(f"{FEATURES_QUESTION!r} in copier.yml must be a multiselect")
        return question

    @property
    def features(self) -> dict[str, str]:
        """Feature label -> feature value, in copier.yml order."""
        return {label: str(value) for label, value in self.feature_question.choices.items()}

    @property
    def feature_values(self) -> list[str]:
        """Feature values, in copier.yml order."""
        return list(self.features.values())

    @property
    def default_features(self) -> list[str]:
        """The features selected when the user just accepts the default."""
        default = self.feature_question.default
        if isinstance(default, list):
            return [str(value) for value in default]
        return []

    def label(self, feature: str) -> str:
        """The human label of a feature value."""
        for label, value in self.features.items():
            if value == feature:
                return label
        raise UnknownFeatureError(feature, self.feature_values)

    def followups(self, feature: str) -> list[Question]:
        """Questions asked only when ``feature`` is on, in copier.yml order."""
        self.check_features([feature])
        return [q for q in self.questions if q.feature == feature]

    def check_features(self, features: Iterable[str]) -> None:
        """Raise UnknownFeatureError for the first value copier.yml does not offer."""
        known = self.feature_values
        for feature in features:
            if feature not in known:
                raise UnknownFeatureError(feature, known)

    def order_features(self, features: Iterable[str]) -> list[str]:
        """Deduplicate and sort features in copier.yml order (stable answers files)."""
        wanted = set(features)
        self.check_features(wanted)
        return [value for value in self.feature_values if value in wanted]


def _choices(raw: Any) -> dict[str, Any]:
    """Normalise copier's three spellings of choices to label -> value."""
    if isinstance(raw, Mapping):
        return {str(label): value for label, value in raw.items()}
    if isinstance(raw, list):
        result: dict[str, Any] = {}
        for item in raw:
            if isinstance(item, list | tuple) and len(item) == 2:
                result[str(item[0])] = item[1]
            else:
                result[str(item)] = item
        return result
    return {}


def _question(name: str, spec: Any) -> Question:
    """Build a Question from its copier.yml entry (long or short form)."""
    if not isinstance(spec, Mapping):
        # Short form `name: default`: copier infers the type from the value.
        return Question(name=name, type=type(spec).__name__, default=spec)
    validator = spec.get("validator")
    return Question(
        name=name,
        type=str(spec.get("type", "yaml")),
        help=str(spec.get("help", "")).strip(),
        default=spec.get("default"),
        choices=_choices(spec.get("choices")),
        multiselect=bool(spec.get("multiselect", False)),
        when=spec.get("when", True),
        validator=str(validator) if validator is not None else None,
    )


def parse_questions(text: str) -> Questions:
    """Parse the text of a copier.yml."""
    data = yaml.safe_load(text)
    if not isinstance(data, Mapping):
        raise QuestionsError("copier.yml must be a mapping of questions")
    questions = tuple(
        _question(str(name), spec) for name, spec in data.items() if not str(name).startswith("_")
    )
    answers_file = str(data.get("_answers_file", ".copier-answers.yml"))
    return Questions(questions=questions, answers_file=answers_file)


def load_questions(root: Path | None = None) -> Questions:
    """Load the questions from ``<root>/copier.yml`` (default: the template in use)."""
    path = (root if root is not None else template_root()) / "copier.yml"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise QuestionsError(f"cannot read {path}: {error.strerror}") from error
    return parse_questions(text)
