"""Retry policy for steps: how many attempts, and how long to wait between them."""

from __future__ import annotations

import math
from dataclasses import dataclass

from durable._base.numbers import count, seconds


@dataclass(frozen=True)
class RetryPolicy:
    """Attempts and exponential backoff for a step.

    The default runs a step once. The wait before attempt ``n + 1`` is
    ``initial_interval * backoff_coefficient ** (n - 1)``, capped at
    ``max_interval``; the waits are durable timers, so a restart waits only
    what is left. Exceptions whose type is in ``non_retryable`` (a tuple of
    exception classes; a list is taken too) fail the step at once. Every field is
    checked here, when the policy is made.
    """

    max_attempts: int = 1
    initial_interval: float = 1.0
    backoff_coefficient: float = 2.0
    max_interval: float = 60.0
    non_retryable: tuple[type[BaseException], ...] = ()

    def __post_init__(self) -> None:
        count("RetryPolicy.max_attempts", self.max_attempts)
        seconds("RetryPolicy.initial_interval", self.initial_interval, zero_ok=True)
        seconds("RetryPolicy.max_interval", self.max_interval, zero_ok=True)
        backoff = self.backoff_coefficient
        if isinstance(backoff, bool) or not isinstance(backoff, (int, float)):
            raise TypeError(f"RetryPolicy.backoff_coefficient must be a number, got {backoff!r}")
        if not backoff >= 1 or math.isinf(backoff):
            raise ValueError(
                f"RetryPolicy.backoff_coefficient must be a finite number >= 1, got {backoff}"
            )
        # A list (or one class) is what people write: kept as the tuple isinstance takes.
        object.__setattr__(self, "non_retryable", _exception_classes(self.non_retryable))

    def delay_after(self, attempt: int) -> float:
        """Seconds to wait after failed attempt ``attempt`` (1-based) before the next."""
        try:
            delay = self.initial_interval * self.backoff_coefficient ** (attempt - 1)
        except OverflowError:  # past any max_interval
            return self.max_interval
        return min(delay, self.max_interval)

    def should_retry(self, attempt: int, error: BaseException) -> bool:
        """Whether a failure of attempt ``attempt`` leaves another attempt to run."""
        return attempt < self.max_attempts and not isinstance(error, self.non_retryable)


def _exception_classes(given: object) -> tuple[type[BaseException], ...]:
    """``RetryPolicy.non_retryable`` as a tuple of exception classes, or ``TypeError``."""
    if isinstance(given, type):
        given = (given,)
    if not isinstance(given, (tuple, list, set, frozenset)) or not all(
        isinstance(cls, type) and issubclass(cls, BaseException) for cls in given
    ):
        raise TypeError(
            f"RetryPolicy.non_retryable takes exception classes, such as"
            f" (KeyError, PermissionError); got {given!r:.80}"
        )
    return tuple(given)
