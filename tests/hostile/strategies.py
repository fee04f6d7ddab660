"""Hypothesis strategies for hostile request bodies, content types and credentials.

Bodies: arbitrary bytes; arbitrary JSON (with NaN, huge numbers, escaped NULs and lone surrogates);
real vendor payloads with one field replaced, removed or re-typed; deep nesting, bare and inside a
plausible envelope; re-encodings (UTF-16/32 with and without BOM, invalid UTF-8, raw NUL bytes);
Slack-style form bodies with hostile fields.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlencode

from hypothesis import strategies as st

__all__ = ["CONTENT_TYPES", "bodies", "garbage_credentials", "payload_for"]

PAYLOADS: Final = Path(__file__).resolve().parent.parent / "payloads"
_ALL: Final = {path.stem: path.read_bytes() for path in sorted(PAYLOADS.glob("*.json"))}


def _parses(body: bytes) -> bool:
    try:
        json.loads(body)
    except ValueError:
        return False
    return True


_VALID: Final = sorted(stem for stem, body in _ALL.items() if _parses(body))
_BROKEN: Final = sorted(stem for stem, body in _ALL.items() if not _parses(body))

CONTENT_TYPES: Final = (
    None, "application/json", "application/json; charset=utf-8", "application/json; charset=utf-16",
    "application/json; charset=no-such-charset", "text/plain", "application/xml", "text/html; charset=latin-1",
    "application/x-www-form-urlencoded", "multipart/form-data; boundary=xyz", "application/octet-stream",
    "garbage/;;;===", "", "*/*",
)

_NASTY_STRINGS: Final = ("\x00", "\ud800", "\udfff", "\u202e", "\ufeff", "%00", "../../etc/passwd", "' OR 1=1 --",
                         "{{7*7}}", "${jndi:ldap://x}", "\r\nX-Injected: 1", "smartlead:0", "lemlist:cam_1",
                         "smartlead:1" * 30, "é" * 300, "<script>", "NaN", "-Infinity")


def payload_for(path: str) -> list[str]:
    """Names of the valid sample payloads of the source at `path` (every one when none is named after it)."""
    name = path.rstrip("/").rsplit("/", 1)[-1]
    return [stem for stem in _VALID if stem.startswith(name + "_")] or list(_VALID)


def _sample(draw: st.DrawFn, samples: list[str]) -> bytes:
    return _ALL[draw(st.sampled_from(samples))]


_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=10**18, max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=40), st.sampled_from(_NASTY_STRINGS),
)
json_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=12), inner, max_size=5)),
    max_leaves=25,
)


def _dump(value: Any) -> bytes:
    # lone surrogates only survive as \\u escapes, which is exactly what a hostile sender would send
    return json.dumps(value, ensure_ascii=True, allow_nan=True).encode()


@st.composite
def mutated_payload(draw: st.DrawFn, samples: list[str]) -> bytes:
    """A real payload with one field (at any depth) replaced, removed, or the whole body re-typed."""
    payload = json.loads(_sample(draw, samples))
    paths: list[list[str | int]] = []

    def walk(node: Any, at: list[str | int]) -> None:
        paths.append(at)
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, [*at, key])
        elif isinstance(node, list):
            for index, value in enumerate(node):
                walk(value, [*at, index])

    walk(payload, [])
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(paths))
        if not path:
            payload = draw(st.one_of(json_values, st.just([payload]), st.just({"events": payload})))
            break
        parent: Any = payload
        try:
            for key in path[:-1]:
                parent = parent[key]
            if draw(st.booleans()) and isinstance(parent, dict):
                parent.pop(path[-1], None)
            else:
                parent[path[-1]] = draw(json_values)
        except (KeyError, IndexError, TypeError):
            continue
    return _dump(payload)


@st.composite
def nasty_strings(draw: st.DrawFn, samples: list[str]) -> bytes:
    """A real payload whose string values (any depth) get a nasty string appended: the shape stays valid, so
    the text travels on into the event (NUL, lone surrogates, bidi overrides, injections)."""
    payload = json.loads(_sample(draw, samples))
    nasty = st.sampled_from(_NASTY_STRINGS)

    def visit(node: Any) -> Any:
        if isinstance(node, dict):
            return {key: visit(value) for key, value in node.items()}
        if isinstance(node, list):
            return [visit(value) for value in node]
        if isinstance(node, str) and draw(st.integers(0, 2)) == 0:
            return node + draw(nasty)
        return node

    return _dump(visit(payload))


def _nest(depth: int, kind: str) -> str:
    if kind == "list":
        return "[" * depth + "]" * depth
    if kind == "dict":
        return '{"a":' * depth + "1" + "}" * depth
    return '{"a":[' * (depth // 2) + "1" + "]}" * (depth // 2)


@st.composite
def deep(draw: st.DrawFn, samples: list[str]) -> bytes:
    """Deeply nested JSON, bare or as the value of a field of a real payload (within the size limit)."""
    depth = draw(st.sampled_from([50, 200, 900, 1000, 1100, 1500, 3000, 6000, 20000]))
    nested = _nest(depth, draw(st.sampled_from(["list", "dict", "mixed"])))
    if draw(st.booleans()):
        return nested.encode()
    sample = _sample(draw, samples).decode()
    inner = sample.strip()
    if inner.startswith("{"):
        return ('{"deep":' + nested + "," + inner[1:]).encode()
    return ("[" + nested + "]").encode()


@st.composite
def reencoded(draw: st.DrawFn, samples: list[str]) -> bytes:
    """A real payload in another encoding, or with invalid UTF-8 / NUL bytes spliced in."""
    text = _sample(draw, samples).decode()
    how = draw(st.sampled_from(["utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-8-sig", "latin-1-bad",
                                "invalid-utf8", "nul", "escaped-nul", "bom-utf8-then-utf16"]))
    if how in ("utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-8-sig"):
        return text.encode(how)
    raw = text.encode()
    at = draw(st.integers(0, len(raw)))
    if how == "latin-1-bad":
        return text.replace("a", "\xe9", 3).encode("latin-1", "replace")
    if how == "invalid-utf8":
        return raw[:at] + draw(st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80"])) + raw[at:]
    if how == "nul":
        return raw[:at] + b"\x00" + raw[at:]
    if how == "escaped-nul":
        return raw.replace(b'":"', b'":"\\u0000', 2)
    return b"\xef\xbb\xbf" + text.encode("utf-16")


@st.composite
def form_body(draw: st.DrawFn) -> bytes:
    """Slack-style url-encoded forms: commands with hostile text, interactions with hostile payloads."""
    fields: dict[str, str] = draw(st.dictionaries(
        st.sampled_from(["command", "text", "user_id", "trigger_id", "response_url", "ssl_check", "team_id"]),
        st.one_of(st.text(max_size=60), st.sampled_from(_NASTY_STRINGS),
                  st.sampled_from(["pause smartlead:1", "resume smartlead:1,leadterra:camp_1", "list held",
                                   "status inbox:abc", "history smartlead:9 extra", "pause lemlist:cam_1"])),
        max_size=5))
    if draw(st.booleans()):
        actions = st.lists(st.fixed_dictionaries({
            "action_id": st.one_of(st.sampled_from(["resume", "keep_paused", "approve", "reject"]), json_values),
            "value": st.one_of(st.text(max_size=30), json_values.map(json.dumps),
                               st.fixed_dictionaries({"campaign": json_values, "decision_id": json_values}).map(
                                   json.dumps)),
        }), max_size=2)
        payload = draw(st.one_of(json_values, st.fixed_dictionaries({
            "type": st.one_of(st.just("block_actions"), json_values), "actions": st.one_of(actions, json_values),
            "user": json_values, "message": st.one_of(json_values, st.fixed_dictionaries({"blocks": json_values})),
            "trigger_id": json_values, "response_url": json_values, "channel": json_values,
        })))
        fields["payload"] = _dump(payload).decode() if draw(st.booleans()) else _nest(
            draw(st.sampled_from([500, 990, 1100, 3000])), draw(st.sampled_from(["list", "dict", "mixed"])))
    return urlencode(fields, errors="surrogatepass").encode()


def bodies(path: str) -> st.SearchStrategy[bytes]:
    samples = payload_for(path)
    if path.startswith("/slack/"):
        return st.one_of(form_body(), form_body(), form_body(), st.binary(max_size=600), json_values.map(_dump))
    return st.one_of(
        st.binary(max_size=600),
        json_values.map(_dump),
        mutated_payload(samples),
        mutated_payload(samples),
        nasty_strings(samples),
        nasty_strings(samples),
        deep(samples),
        reencoded(samples),
        form_body(),
        st.sampled_from(samples).map(_ALL.__getitem__),
        st.sampled_from(_BROKEN).map(_ALL.__getitem__),
    )


def garbage_credentials() -> st.SearchStrategy[dict[str, str]]:
    """Headers that look like credentials but are wrong, truncated or absurd."""
    value = st.one_of(st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=80),
                      st.text(st.characters(min_codepoint=0xA0, exclude_categories=["Cs", "Cc", "Zl", "Zp"]),
                              min_size=1, max_size=20),
                      st.sampled_from(["²", "\u0661\u0667" + "\u0660" * 8, "9" * 5000, "v0=é", "sha256=ü" + "0" * 63, "Bearer é"]),
                      st.sampled_from(["Bearer", "Bearer ", "Basic Zm9vOmJhcg==", "sha256=", "v0=", "sha256=zz",
                                       "1" * 300, "-1", "99999999999999999999", "1e9", " 1700000000 "]))
    names = st.sampled_from(["Authorization", "X-Smartlead-Signature", "X-Leadterra-Signature", "X-Slack-Signature",
                             "X-Slack-Request-Timestamp", "X-Grafana-Alerting-Signature", "X-Grafana-Alerting-Timestamp"])
    return st.dictionaries(names, value, max_size=4)
