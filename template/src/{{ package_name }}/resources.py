"""Process resource limits a server of many connections needs.

Every WebSocket member and SSE stream holds a socket, and containers and
systemd units often start processes with a soft ``RLIMIT_NOFILE`` of 1024
whatever the hard limit allows: the 1,021st connection would then fail with
"too many open files". A process may raise its own soft limit up to the hard
one without privileges, so the service does at startup.
"""

import logging
import resource
from typing import Final

logger = logging.getLogger(__name__)

MAX_OPEN_FILES: Final = 1_048_576
"""Ceiling when the hard limit is unlimited (the kernel's usual ``nr_open``)."""


def open_file_limit() -> int:
    """The soft open-file limit of this process now."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return MAX_OPEN_FILES if soft == resource.RLIM_INFINITY else soft


def raise_open_file_limit() -> int:
    """Raise the soft open-file limit to the hard one; return the limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = MAX_OPEN_FILES if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as error:
            logger.warning(
                "could not raise the open-file limit",
                extra={"soft": soft, "hard": hard, "error": str(error)},
            )
            return soft
        logger.info(
            "raised the open-file limit", extra={"soft_was": soft, "soft": target, "hard": hard}
        )
        return target
    return open_file_limit()
