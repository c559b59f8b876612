"""The JSON schema of each registered task's call, read from its signature.

``POST /tasks`` takes ``args`` as a list (positional) or an object (keyword
arguments). Which lengths and names fit depends on the task, so the OpenAPI
document carries one variant per task (``oneOf`` on its ``name``): clients and
contract testers then know which calls the queue accepts, and a call that
cannot fit is refused with a 422 the schema predicted.
"""

import inspect
from typing import Any

from .registry import TaskRegistry, TaskSpec

_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
_KEYWORD = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
_VARIADIC = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)


def arguments_schema(spec: TaskSpec) -> dict[str, Any]:
    """The ``args`` a call of ``spec`` accepts: a list, an object, or either."""
    parameters = list(spec.signature.parameters.values())
    kinds = {parameter.kind for parameter in parameters}
    required = [p for p in parameters if p.default is inspect.Parameter.empty]
    forms: list[dict[str, Any]] = []
    # As a list: every required parameter must be positional.
    if all(p.kind in _POSITIONAL for p in required if p.kind not in _VARIADIC):
        positional = [p for p in parameters if p.kind in _POSITIONAL]
        array: dict[str, Any] = {
            "type": "array",
            "minItems": sum(1 for p in required if p.kind in _POSITIONAL),
        }
        if inspect.Parameter.VAR_POSITIONAL not in kinds:
            array["maxItems"] = len(positional)
        forms.append(array)
    # As an object: every required parameter must be nameable.
    if all(p.kind in _KEYWORD for p in required if p.kind not in _VARIADIC):
        named = [p for p in parameters if p.kind in _KEYWORD]
        forms.append(
            {
                "type": "object",
                "properties": {p.name: {} for p in named},
                "required": [p.name for p in required if p.kind in _KEYWORD],
                "additionalProperties": inspect.Parameter.VAR_KEYWORD in kinds,
            }
        )
    return forms[0] if len(forms) == 1 else {"anyOf": forms}


def _needs_arguments(spec: TaskSpec) -> bool:
    return any(
        p.default is inspect.Parameter.empty and p.kind not in _VARIADIC
        for p in spec.signature.parameters.values()
    )


def describe_tasks(registry: TaskRegistry, schema: dict[str, Any]) -> None:
    """Add one variant per registered task to the request schema (in place)."""
    schema["properties"]["name"]["enum"] = registry.names
    schema["oneOf"] = [
        {
            "properties": {"name": {"const": spec.name}, "args": arguments_schema(spec)},
            # Without args the call has none: fine only for a task that needs none.
            "required": ["name", "args"] if _needs_arguments(spec) else ["name"],
        }
        for spec in registry
    ]
