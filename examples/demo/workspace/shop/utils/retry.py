"""A tiny retry decorator for calls to flaky external services."""

from __future__ import annotations

import functools
import sys
import time
from typing import Callable, TypeVar

F = TypeVar("F", bound=Callable[..., object])


def retry(
    attempts: int = 3,
    delay: float = 0.2,
    backoff: float = 2.0,
    exceptions: tuple[type[BaseException], ...] = (ConnectionError, TimeoutError),
    sleep: Callable[[float], None] = time.sleep,
) -> Callable[[F], F]:
    """Retries the wrapped call on ``exceptions``, sleeping ``delay * backoff**n``.

    Only transient failures should be listed in ``exceptions``: a declined payment
    must not be retried.
    """
    if attempts < 1:
        raise ValueError("attempts must be at least 1")

    def decorate(fn: F) -> F:
        name = getattr(fn, "__name__", type(fn).__name__)

        @functools.wraps(fn)
        def wrapper(*args: object, **kwargs: object) -> object:
            wait = delay
            for attempt in range(1, attempts + 1):
                try:
                    return fn(*args, **kwargs)
                except exceptions as exc:
                    if attempt == attempts:
                        print(
                            f"giving up on {name} after {attempts} attempts: {exc!r}",
                            file=sys.stderr,
                        )
                        raise
                    print(
                        f"retrying {name} in {wait:.2f}s "
                        f"(attempt {attempt}/{attempts} failed: {exc!r})",
                        file=sys.stderr,
                    )
                    sleep(wait)
                    wait *= backoff
            raise AssertionError("unreachable")

        return wrapper  # type: ignore[return-value]

    return decorate
