"""Liveness (``/healthz``) and readiness (``/readyz``) endpoints.

Liveness says the process serves HTTP; it never touches a dependency, so a
Redis or PostgreSQL outage does not get the process restarted. Readiness runs
every registered dependency check concurrently, each under its own timeout, so a
hung dependency turns into a quick 503 instead of a hung probe.

The 503 names each failing check with a short, generic reason (the kind of
failure, never its message: those carry internal hosts and ports, such as
``Error 111 connecting to 10.0.3.7:6379``); the log line that reports the
failure carries the details.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

logger = logging.getLogger(__name__)

Check = Callable[[], Awaitable[object]]
"""A readiness check: an async callable that returns when the dependency answers
and raises (or never returns) when it does not."""

_MAX_DETAIL_LENGTH = 500

_NOT_READY_RESPONSE = {"description": "At least one dependency does not answer."}


@dataclass(frozen=True, slots=True)
class CheckResult:
    """Outcome of one readiness check."""

    name: str
    ok: bool
    reason: str | None = None
    """Why it failed, fit for the response: generic, no addresses."""
    detail: str | None = None
    """Why it failed in full, for the log."""


class ReadinessChecks:
    """Registry of named async readiness checks, run with a per-check timeout."""

    def __init__(self, timeout: float) -> None:
        """Create an empty registry whose checks each get ``timeout`` seconds."""
        self._timeout = timeout
        self._checks: dict[str, Check] = {}
        # Last outcome per check, so a failure is logged when it starts and when
        # it ends rather than on every probe.
        self._last_ok: dict[str, bool] = {}

    @property
    def names(self) -> list[str]:
        """Names of the registered checks, in registration order."""
        return list(self._checks)

    def register(self, name: str, check: Check) -> None:
        """Add a check; names are unique so a response names one dependency each."""
        if name in self._checks:
            raise ValueError(f"readiness check {name!r} is already registered")
        self._checks[name] = check

    def unregister(self, name: str) -> None:
        """Remove a check (a component that stopped no longer gates readiness)."""
        self._checks.pop(name, None)
        self._last_ok.pop(name, None)

    async def run(self) -> list[CheckResult]:
        """Run every check concurrently and return their outcomes."""
        checks = list(self._checks.items())
        results = await asyncio.gather(*(self._run_one(name, check) for name, check in checks))
        for result in results:
            self._log_transition(result)
        return list(results)

    async def _run_one(self, name: str, check: Check) -> CheckResult:
        try:
            async with asyncio.timeout(self._timeout):
                await check()
        except TimeoutError:
            reason = f"no answer within {self._timeout:g} s"
            return CheckResult(name, ok=False, reason=reason, detail=reason)
        except Exception as exc:
            # Any failure of a dependency means "not ready"; the probe itself must
            # still answer, so nothing escapes from here.
            return CheckResult(name, ok=False, reason=_public_reason(exc), detail=_detail(exc))
        return CheckResult(name, ok=True)

    def _log_transition(self, result: CheckResult) -> None:
        previous = self._last_ok.get(result.name)
        self._last_ok[result.name] = result.ok
        if previous is None and result.ok:
            return
        if previous != result.ok:
            if result.ok:
                logger.info("readiness check %s recovered", result.name)
            else:
                logger.warning("readiness check %s failing: %s", result.name, result.detail)


def _public_reason(exc: BaseException) -> str:
    # The kind of failure only: exception messages name hosts, ports and paths.
    public = getattr(exc, "public_message", None)
    if isinstance(public, str):
        return public
    if isinstance(exc, ConnectionError) or "Connection" in type(exc).__name__:
        return "cannot connect"
    return f"failed ({type(exc).__name__})"


def _detail(exc: BaseException) -> str:
    text = str(exc).strip()
    detail = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    if len(detail) > _MAX_DETAIL_LENGTH:
        detail = detail[: _MAX_DETAIL_LENGTH - 3] + "..."
    return detail


router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness")
async def healthz() -> dict[str, str]:
    """Answer 200 while the process serves requests, whatever its dependencies do."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Readiness",
    responses={503: _NOT_READY_RESPONSE},
)
async def readyz(request: Request) -> JSONResponse:
    """Answer 200 when every enabled dependency answers, else 503 naming the failures."""
    readiness: ReadinessChecks = request.app.state.readiness
    results = await readiness.run()
    checks = {result.name: "ok" if result.ok else "fail" for result in results}
    errors = {result.name: result.reason for result in results if not result.ok}
    if errors:
        return JSONResponse(
            {"status": "unavailable", "checks": checks, "errors": errors}, status_code=503
        )
    return JSONResponse({"status": "ok", "checks": checks})
