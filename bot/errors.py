"""Errors raised inside the bot on purpose.

BotError
├── ConfigError              bad settings or rule files (startup only)
├── PayloadError             a body we cannot parse → 400 at the edge, dead-letter in the worker
├── BrokerUnavailable        the broker did not confirm a publish          (retryable)
├── VendorError              raised by vendor clients
│   ├── VendorUnavailable    timeout, connection error, 429, 5xx           (retryable)
│   ├── VendorAuthError      401/403: the credential is wrong; do not loop
│   ├── VendorNotFound       404: the campaign does not exist or is not ours
│   └── VendorRejected       any other 4xx (400, 409, 422): retrying will not help
├── WriteCancelled           a pause/resume no longer wanted, withdrawn before it was sent
├── StaleRecord              a campaign record changed since it was read (compare-and-set lost)
└── StateError               the state store failed                        (retryable)

`RetryableError` is mixed into the classes marked retryable; the worker retries only those.
No message here ever holds a credential or a full URL: callers pass a safe `where` string.
"""

from __future__ import annotations

__all__ = [
    "AccountError",
    "AccountUnknown",
    "BotError",
    "BrokerUnavailable",
    "ConfigError",
    "PayloadError",
    "RetryableError",
    "StaleRecord",
    "StateError",
    "VendorAuthError",
    "VendorError",
    "VendorNotFound",
    "VendorRejected",
    "VendorUnavailable",
    "WriteCancelled",
]


class BotError(Exception):
    """Root of every error the bot raises on purpose."""


class RetryableError(BotError):
    """Another attempt at the same message may succeed."""


class ConfigError(BotError):
    """Settings or rule files are invalid; the message says what to change."""


class AccountError(BotError):
    """A campaign that cannot be placed in exactly one configured account (bot.accounts)."""


class AccountUnknown(AccountError, RetryableError):
    """No account lists the campaign yet: the next inventory refresh may find it, so it is retried."""


class PayloadError(BotError):
    """An inbound body or queued message that cannot be understood."""


class BrokerUnavailable(RetryableError):
    """The broker is unreachable or did not confirm a publish."""


class StateError(RetryableError):
    """The state store failed."""


class VendorError(BotError):
    """A vendor call failed. `where` is e.g. `POST /campaigns/123/status`, never a URL with a key."""

    def __init__(
        self, vendor: str, status: int | None, where: str, detail: str = "", *, retry_after: float | None = None
    ) -> None:
        super().__init__(vendor, status, where, detail)
        self.vendor = vendor
        self.status = status
        self.where = where
        self.detail = detail
        self.retry_after = retry_after

    def __str__(self) -> str:
        answered = f"answered {self.status}" if self.status else "did not answer"
        tail = f": {self.detail[:200]}" if self.detail else ""
        return f"{self.vendor} {answered} to {self.where}{tail}"


class VendorUnavailable(VendorError, RetryableError):
    """Timeout, connection failure, 429 or 5xx; retried with backoff."""


class VendorAuthError(VendorError):
    """401/403: the API key is wrong or lacks a scope."""


class VendorNotFound(VendorError):
    """404: the campaign does not exist or this key cannot see it."""


class VendorRejected(VendorError):
    """400/409/422 and other 4xx: the request will not succeed as it is."""


class WriteCancelled(BotError):
    """A vendor write's guard said it is no longer wanted (a hold arrived while a resume waited for the
    rate limit, a release while a pause did): the attempt was not sent. `sent_before`: an earlier
    attempt of the same write was sent and its answer lost, so the campaign's state is not known."""

    def __init__(self, vendor: str, where: str, *, sent_before: bool) -> None:
        super().__init__(f"{vendor}: {where} withdrawn before it was sent")
        self.vendor = vendor
        self.where = where
        self.sent_before = sent_before


class StaleRecord(BotError):
    """A compare-and-set on a campaign record found a newer version: the write acted on a stale read."""
