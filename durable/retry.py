"""Retry policy for steps: how many attempts, and how long to wait between them."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ._numbers import seconds


@dataclass(frozen=True)
class RetryPolicy:
    """Attempts and exponential backoff for a step.

    The default runs a step once. The wait before attempt ``n + 1`` is
    ``initial_interval * backoff_coefficient ** (n - 1)``, capped at
    ``max_interval``; the waits are durable timers, so a restart waits only
    what is left. Exceptions whose type is in ``non_retryable`` fail the step
    at once.
    """

    max_attempts: int = 1
    initial_interval: float = 1.0
    backoff_coefficient: float = 2.0
    max_interval: float = 60.0
    non_retryable: tuple[type[BaseException], ...] = ()

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"RetryPolicy.max_attempts must be >= 1, got {self.max_attempts}")
        seconds("RetryPolicy.initial_interval", self.initial_interval, zero_ok=True)
        seconds("RetryPolicy.max_interval", self.max_interval, zero_ok=True)
        if not self.backoff_coefficient >= 1 or math.isinf(self.backoff_coefficient):
            raise ValueError(
                f"RetryPolicy.backoff_coefficient must be >= 1, got {self.backoff_coefficient}"
            )

    def delay_after(self, attempt: int) -> float:
        """Seconds to wait after failed attempt ``attempt`` (1-based) before the next."""
        delay = self.initial_interval * self.backoff_coefficient ** (attempt - 1)
        return min(delay, self.max_interval)

    def should_retry(self, attempt: int, error: BaseException) -> bool:
        """Whether a failure of attempt ``attempt`` leaves another attempt to run."""
        return attempt < self.max_attempts and not isinstance(error, self.non_retryable)
