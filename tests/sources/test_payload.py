"""Shared payload reading: timestamps in many formats, bounded ids, typed field access."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.sources.payload import MAX_ID_LENGTH, Fields, keyed_id, parse_timestamp, vendor_id

NOON = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "value",
    [
        "2026-11-22T12:00:00Z",
        "2026-11-22T12:00:00.000Z",
        "2026-11-22T13:00:00+01:00",
        "2026-11-22T12:00:00",
        "2026-11-22 12:00:00",
        "Sun, 22 Nov 2026 12:00:00 GMT",
        1795348800,
        1795348800.0,
        1795348800000,
        1795348800000000,
        "1795348800",
        "1795348800000",
    ],
)
def test_timestamps_in_every_vendor_format(value: object) -> None:
    assert parse_timestamp(value) == NOON


@pytest.mark.parametrize("value", [None, True, "", "yesterday", "2026-13-45T00:00:00Z", 0, -5, float("inf"), {}, []])
def test_unusable_timestamps_read_as_none(value: object) -> None:
    assert parse_timestamp(value) is None


def test_ids_stay_short_and_ascii() -> None:
    assert vendor_id("inbox", "abc") == "inbox:id:abc"
    long_id = keyed_id("smartlead", "email.sent", "x" * 500)
    assert len(long_id) <= MAX_ID_LENGTH and long_id.startswith("smartlead:email.sent:sha256:")
    unicode_id = vendor_id("events", "événement-1")
    assert unicode_id.isascii() and unicode_id.startswith("events:id:sha256:")
    assert vendor_id("events", "événement-1") == unicode_id
    assert vendor_id("events", "événement-2") != unicode_id


def test_fields_read_typed_values_forgivingly() -> None:
    fields = Fields({"a": {"b": " x "}, "n": "42", "f": "4.1%", "t": True, "z": 0, "nan": float("nan")})
    assert fields.text("a", "b") == "x"
    assert fields.text("a", "missing", "deeper") is None
    assert fields.integer("n") == 42 and fields.integer("t") is None
    assert fields.number("f") == 4.1 and fields.number("nan") is None
    assert fields.first_integer("missing", "z") == 0
    assert fields.first_text("a.c", "a.b") == "x"
    assert Fields(["not", "a", "dict"]).get("a") is None


@pytest.mark.parametrize("body", [
    b'{"event": "\xed\xa0\x80", "data": {}}',               # a surrogate as raw (invalid) UTF-8 bytes
    b'{"event": "\\ud800", "data": {}}',                   # the same as a JSON escape
    '{"event": "\ud83d"}'.encode("utf-16-le", "surrogatepass"),
])
def test_a_lone_surrogate_is_a_400_not_a_500_at_publish(body: bytes) -> None:
    from bot.errors import PayloadError
    from bot.sources import parse_json

    with pytest.raises(PayloadError, match="lone surrogate"):
        parse_json(body)
    assert parse_json('{"event": "é 😀"}'.encode()) == {"event": "é 😀"}
