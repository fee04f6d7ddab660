"""Leak canaries: distinctive fake credentials, and every place a leaked one could surface, gathered as text.

Each secret holds `LEAKCANARY`, so a leak is found even when only part of a secret (a prefix, a URL
with it) escapes. Nothing else in the scenario may contain that word.
"""

from __future__ import annotations

import base64
import shutil
import sqlite3
import subprocess
import uuid
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

import aio_pika
import structlog
from yarl import URL

from bot.log import redact_secrets

__all__ = ["MARK", "SECRETS", "Recorder", "amqp_user", "db_dump", "dead_letter_texts", "find_leaks", "recording"]

MARK: Final = "LEAKCANARY"
_N: Final = uuid.uuid4().hex[:6]
SECRETS: Final = {
    "smartlead_api_key": f"{MARK}-smartlead-key-{_N}",
    "leadterra_api_key": f"sk_live_{MARK}_leadterra_{_N}",
    "inbox_api_key": f"{MARK}-inbox-token-{_N}",
    "instantly_api_key": f"{MARK}-instantly-key-{_N}",
    "lemlist_api_key": f"{MARK}-lemlist-key-{_N}",
    "instantly_webhook_secret": f"{MARK}-instantly-whtoken-{_N}",
    "lemlist_webhook_secret": f"{MARK}-lemlist-whtoken-{_N}",
    "webhook_token": f"{MARK}-webhook-token-{_N}",
    "smartlead_webhook_secret": f"{MARK}-smartlead-whsec-{_N}",
    "leadterra_webhook_secret": f"{MARK}-leadterra-whsec-{_N}",
    "slack_signing_secret": f"{MARK}-slack-signing-{_N}",
    "slack_bot_token": f"xoxb-{MARK}-slack-bot-{_N}",
    "alertmanager_token": f"{MARK}-alertmanager-token-{_N}",
    "grafana_webhook_secret": f"{MARK}-grafana-whsec-{_N}",
}
AMQP_PASSWORD: Final = f"{MARK}-amqp-{_N}"


class Recorder:
    """A structlog processor placed after redaction: records exactly what reaches the log sink."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, _: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        self.lines.append(repr(dict(event)))
        return event


@contextmanager
def recording() -> Iterator[Recorder]:
    """Route every structlog line through the real redaction, then the recorder, then JSON to stdout."""
    recorder = Recorder()
    processors = list(structlog.get_config()["processors"])
    at = processors.index(redact_secrets) + 1
    structlog.configure(processors=[*processors[:at], recorder, *processors[at:]])
    try:
        yield recorder
    finally:
        structlog.configure(processors=processors)


def _ctl(*args: str) -> bool:
    try:
        return subprocess.run(["rabbitmqctl", *args], capture_output=True, timeout=60, check=False).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@contextmanager
def amqp_user(admin_url: str) -> Iterator[tuple[str, str | None]]:
    """(URL, password) of a throw-away RabbitMQ user whose password is a canary, made with rabbitmqctl on
    the local node; when that is not possible (remote broker, no rabbitmqctl): the admin URL and None."""
    url = URL(admin_url)
    user = f"cg-canary-{_N}"
    local = url.host in ("127.0.0.1", "localhost") and (url.port or 5672) == 5672 and shutil.which("rabbitmqctl")
    if not (local and _ctl("add_user", user, AMQP_PASSWORD)):
        yield admin_url, None
        return
    try:
        vhost = url.path[1:] or "/"
        if not _ctl("set_permissions", "-p", vhost, user, ".*", ".*", ".*"):
            yield admin_url, None
            return
        yield str(url.with_user(user).with_password(AMQP_PASSWORD)), AMQP_PASSWORD
    finally:
        _ctl("delete_user", user)


def db_dump(path: Path) -> str:
    """Every row of every table of the state database (audit, events, holds, outbox, ...) as SQL text."""
    with sqlite3.connect(path) as connection:
        return "\n".join(connection.iterdump())


async def dead_letter_texts(admin_url: str, queue: str) -> list[str]:
    """Body, headers and properties of every message in the dead-letter queue (taken)."""
    texts = []
    connection = await aio_pika.connect(admin_url, timeout=10)
    async with connection:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, passive=True)
        while (message := await declared.get(no_ack=True, fail=False, timeout=5)) is not None:
            texts.append(f"{message.body!r} {message.headers!r} {message.message_id!r} {message.routing_key!r}")
    return texts


#: Encodings a secret can travel in: lemlist's key rides as HTTP Basic, base64 of `:<key>`.
_ENCODED: Final = tuple(base64.b64encode(f":{value}".encode()).decode()[:24] for value in SECRETS.values())


def find_leaks(places: dict[str, list[str]]) -> list[str]:
    """`place: …context…` for every text holding the mark, or a secret in its Basic-auth encoding."""
    found = []
    for place, texts in places.items():
        for text in texts:
            for needle in (MARK, *_ENCODED):
                at = text.find(needle)
                if at >= 0:
                    found.append(f"{place}: …{text[max(0, at - 160):at + 80]}…")
    return found
