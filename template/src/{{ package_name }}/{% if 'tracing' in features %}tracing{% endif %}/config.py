"""The standard ``OTEL_*`` variables, checked before anything is exported.

The OpenTelemetry SDK reads these itself, and on a value it cannot use it logs
a warning and carries on with its default: a typo in the collector's address or
the export timeout would go unnoticed until someone looks for the traces. The
service checks every variable it relies on at startup instead, and refuses to
start with one line naming the variable. The values are never repeated in that
line: headers and endpoints may carry credentials.
"""

import re
from collections.abc import Callable, Mapping
from typing import Final
from urllib.parse import urlsplit


class TracingConfigError(ValueError):
    """An ``OTEL_*`` variable has a value the service cannot use; the message names it."""


EXPORTERS: Final = ("otlp", "console", "none")
"""Values of ``OTEL_TRACES_EXPORTER``: OTLP over HTTP (default), stdout, or nothing."""

_BOOLEAN: Final = ("true", "false")
_PROTOCOLS: Final = ("http/protobuf",)
_COMPRESSIONS: Final = ("gzip", "deflate", "none")
_PROPAGATORS: Final = ("tracecontext", "baggage", "none")
_KEY_VALUE: Final = re.compile(r"^\s*[^=,\s][^=,]*=[^,]*$")


def _one_of(choices: tuple[str, ...]) -> Callable[[str], str | None]:
    def check(value: str) -> str | None:
        if value.strip().lower() in choices:
            return None
        return "must be one of " + ", ".join(choices)

    return check


def _url(value: str) -> str | None:
    try:
        parts = urlsplit(value.strip())
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError:
        return "is not a URL"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an http:// or https:// URL with a host"
    return None


def _positive_number(value: str) -> str | None:
    try:
        number = float(value)
    except ValueError:
        return "must be a number"
    if not number > 0 or number == float("inf"):
        return "must be a positive number"
    return None


def _positive_integer(value: str) -> str | None:
    if not value.strip().isdigit() or int(value) < 1:
        return "must be a whole number of at least 1"
    return None


def _key_values(value: str) -> str | None:
    items = [item for item in value.split(",") if item.strip()]
    if not all(_KEY_VALUE.match(item) for item in items):
        return "must be a comma-separated list of key=value"
    return None


def _propagators(value: str) -> str | None:
    names = [name.strip().lower() for name in value.split(",") if name.strip()]
    unknown = [name for name in names if name not in _PROPAGATORS]
    if unknown:
        return "may name only " + ", ".join(_PROPAGATORS)
    return None


def _not_empty(value: str) -> str | None:
    return None if value.strip() else "must not be empty"


def _use_the_setting(value: str) -> str | None:
    return "is not used: set {setting} (the share of new traces to record) instead"


_CHECKS: Final[dict[str, Callable[[str], str | None]]] = {
    "OTEL_SDK_DISABLED": _one_of(_BOOLEAN),
    "OTEL_SERVICE_NAME": _not_empty,
    "OTEL_RESOURCE_ATTRIBUTES": _key_values,
    "OTEL_TRACES_EXPORTER": _one_of(EXPORTERS),
    "OTEL_PROPAGATORS": _propagators,
    "OTEL_EXPORTER_OTLP_ENDPOINT": _url,
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": _url,
    "OTEL_EXPORTER_OTLP_PROTOCOL": _one_of(_PROTOCOLS),
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": _one_of(_PROTOCOLS),
    "OTEL_EXPORTER_OTLP_TIMEOUT": _positive_number,
    "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT": _positive_number,
    "OTEL_EXPORTER_OTLP_HEADERS": _key_values,
    "OTEL_EXPORTER_OTLP_TRACES_HEADERS": _key_values,
    "OTEL_EXPORTER_OTLP_COMPRESSION": _one_of(_COMPRESSIONS),
    "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION": _one_of(_COMPRESSIONS),
    "OTEL_BSP_SCHEDULE_DELAY": _positive_integer,
    "OTEL_BSP_EXPORT_TIMEOUT": _positive_integer,
    "OTEL_BSP_MAX_QUEUE_SIZE": _positive_integer,
    "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": _positive_integer,
    "OTEL_TRACES_SAMPLER": _use_the_setting,
    "OTEL_TRACES_SAMPLER_ARG": _use_the_setting,
}


def check_environment(environ: Mapping[str, str], sample_ratio_setting: str) -> None:
    """Raise ``TracingConfigError`` naming the first ``OTEL_*`` variable with an unusable value.

    ``sample_ratio_setting`` is the name of the service's own sampling setting,
    which the sampler variables would otherwise silently compete with.
    """
    for name, check in _CHECKS.items():
        value = environ.get(name)
        if value is None or (value == "" and check is not _use_the_setting):
            continue  # Unset, or empty (the SDK treats both as "use the default").
        problem = check(value)
        if problem is not None:
            raise TracingConfigError(f"{name} {problem.format(setting=sample_ratio_setting)}")
    queue = environ.get("OTEL_BSP_MAX_QUEUE_SIZE")
    batch = environ.get("OTEL_BSP_MAX_EXPORT_BATCH_SIZE")
    if queue and batch and int(batch) > int(queue):
        raise TracingConfigError(
            "OTEL_BSP_MAX_EXPORT_BATCH_SIZE must not be larger than OTEL_BSP_MAX_QUEUE_SIZE"
        )
