"""LemlistClient against the vendor simulator: Basic auth, `status`/`state`, the no-op pause, the
"already running" start, never launching a draft or lifting an `errors` hold, 20 requests per 2 s."""

from __future__ import annotations

import asyncio
import base64
import socket
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
import structlog

from bot.errors import VendorAuthError, VendorError, VendorNotFound, VendorRejected, VendorUnavailable
from bot.log import scrub
from bot.testing import DEFAULT_KEYS, VendorSimulator, max_in_window
from bot.vendors import RetryPolicy, VendorRefused
from bot.vendors.base import CampaignStatus, Observation, WriteResult
from bot.vendors.http import basic_credentials, parse_reset_date, parse_retry_after
from bot.vendors.lemlist import SPEC, STATUSES
from bot.vendors.lemlist.client import LemlistClient, parse_observation, parse_status
from bot.vendors.lemlist.sim import ALREADY_RUNNING, js_date
from tests.vendors.conftest import FAST_RETRY, assert_secret_absent

CID = "cam_aaWL92T22Sei3Bz6v"
REF = f"lemlist:{CID}"


@pytest.fixture
def lemlist(session: aiohttp.ClientSession, base: Callable[[str], str]) -> LemlistClient:
    return LemlistClient(session, api_key=DEFAULT_KEYS["lemlist"], base_url=base("lemlist"), retry=FAST_RETRY,
                         timeout=5)


def posts(sim: VendorSimulator) -> list[str]:
    return [c.path for c in sim.calls_for("lemlist", "POST")]


# ------------------------------------------------------------------ reading


@pytest.mark.parametrize(("native", "common"), list(STATUSES.items()))
async def test_state_maps_every_status(sim: VendorSimulator, lemlist: LemlistClient, native: str,
                                       common: CampaignStatus) -> None:
    sim.add_campaign(REF, native)
    assert await lemlist.state(CID) is common
    assert (await lemlist.observe(CID)).changed_at is None          # the Campaign object has no update stamp


def test_status_map_is_the_documented_one() -> None:
    assert STATUSES == {"running": CampaignStatus.ACTIVE, "paused": CampaignStatus.PAUSED,
                        "draft": CampaignStatus.DRAFT, "ended": CampaignStatus.COMPLETED,
                        "archived": CampaignStatus.ARCHIVED, "errors": CampaignStatus.VENDOR_HELD}
    assert SPEC.rate_limits == {"rate_limit": (20, 2.0)} and SPEC.base_url == "https://api.lemlist.com/api"
    assert SPEC.env("api_key") == "BOT_LEMLIST_API_KEY" and SPEC.secrets == ("api_key", "webhook_secret")


def test_parsing_status_state_has_error_and_stamps() -> None:
    assert parse_status({"_id": CID, "state": "paused"}, key="state") == (CampaignStatus.PAUSED, "paused")
    assert parse_status({"_id": CID, "status": "Running"})[0] is CampaignStatus.ACTIVE
    assert parse_status({"status": "paused", "hasError": True})[0] is CampaignStatus.VENDOR_HELD
    assert parse_status({"status": "running", "hasError": True})[0] is CampaignStatus.ACTIVE
    assert parse_status({"status": "launching"})[0] is CampaignStatus.UNKNOWN
    assert parse_status([1, 2])[0] is CampaignStatus.UNKNOWN
    assert parse_observation({"status": "paused", "updatedAt": "2026-11-22T10:00:00.123Z"}) == Observation(
        CampaignStatus.PAUSED, "2026-11-22T10:00:00.123Z")
    assert parse_observation({"campaign": {"status": "running", "createdAt": "x"}}) == Observation(
        CampaignStatus.ACTIVE, None)


async def test_unknown_status_is_unknown_and_refused(sim: VendorSimulator, lemlist: LemlistClient) -> None:
    sim.add_campaign(REF, "running")
    sim.set_status(REF, "launching", raw=True)
    assert await lemlist.state(CID) is CampaignStatus.UNKNOWN
    with pytest.raises(VendorRefused, match="no automatic action"):
        await lemlist.pause(CID)
    with pytest.raises(VendorRefused, match="only a paused campaign"):
        await lemlist.resume(CID)
    assert posts(sim) == []


# ------------------------------------------------------------------ pause and start


async def test_pause_is_proven_by_the_read_after_it(sim: VendorSimulator, lemlist: LemlistClient) -> None:
    sim.add_campaign(REF, "running")
    result = await lemlist.pause(CID)
    assert result == WriteResult(CampaignStatus.PAUSED, sent=True, proven=True, changed_at=None)
    assert [(c.method, c.path) for c in sim.calls] == [
        ("GET", f"/campaigns/{CID}"), ("POST", f"/campaigns/{CID}/pause"), ("GET", f"/campaigns/{CID}")]
    assert sim.calls[1].body is None                                 # no body, no key anywhere but the header
    assert sim.status_of(REF) == "paused"


@pytest.mark.parametrize("status", ["paused", "draft", "ended", "archived", "errors"])
async def test_pause_of_a_campaign_not_running_is_not_sent_nor_proven(
    sim: VendorSimulator, lemlist: LemlistClient, status: str
) -> None:
    sim.add_campaign(REF, status)
    result = await lemlist.pause(CID)
    assert (result.sent, result.proven) == (False, False)
    assert result.status is STATUSES[status]
    assert posts(sim) == [] and sim.status_of(REF) == status


async def test_the_vendor_pause_no_op_is_not_claimed(sim: VendorSimulator, lemlist: LemlistClient) -> None:
    """Someone paused it between our read and our pause: lemlist answers its no-op (`state: paused`)."""
    sim.add_campaign(REF, "running")
    sim.inject("lemlist", "race", method="POST", set_status="paused")
    result = await lemlist.pause(CID, current=Observation(CampaignStatus.ACTIVE))
    assert posts(sim) == [f"/campaigns/{CID}/pause"]
    # the read after shows paused: the model's evidence (seen running, paused after); the race is the
    # documented limit of every vendor without a conditional write (README)
    assert result.status is CampaignStatus.PAUSED and result.sent


async def test_resume_starts_a_paused_campaign_and_proves_it(sim: VendorSimulator, lemlist: LemlistClient) -> None:
    sim.add_campaign(REF, "paused")
    result = await lemlist.resume(CID)
    assert result == WriteResult(CampaignStatus.ACTIVE, sent=True, proven=True, changed_at=None)
    assert posts(sim) == [f"/campaigns/{CID}/start"]
    again = await lemlist.resume(CID)
    assert (again.status, again.sent, again.proven) == (CampaignStatus.ACTIVE, False, False)
    assert posts(sim) == [f"/campaigns/{CID}/start"]


async def test_already_running_400_is_a_no_op_at_target(sim: VendorSimulator, lemlist: LemlistClient) -> None:
    """Read paused, then a person started it: lemlist's 400 "already running" is not an error, not ours."""
    sim.add_campaign(REF, "paused")
    sim.inject("lemlist", "race", method="POST", set_status="running")
    result = await lemlist.resume(CID)
    assert (result.status, result.sent, result.proven) == (CampaignStatus.ACTIVE, True, False)
    assert "400" in result.detail and "already active" in result.detail
    [start] = sim.calls_for("lemlist", "POST")
    assert start.status == 400


async def test_the_simulated_start_answers_already_running(sim: VendorSimulator, session: aiohttp.ClientSession,
                                                           base: Callable[[str], str]) -> None:
    sim.add_campaign(REF, "running")
    auth = {"Authorization": "Basic " + basic_credentials(DEFAULT_KEYS["lemlist"])}
    async with session.post(f"{base('lemlist')}/campaigns/{CID}/start", headers=auth) as resp:
        assert (resp.status, await resp.text()) == (400, ALREADY_RUNNING)
    async with session.post(f"{base('lemlist')}/campaigns/{CID}/pause", headers=auth) as resp:
        assert (resp.status, await resp.json()) == (200, {"_id": CID, "state": "paused"})
    async with session.post(f"{base('lemlist')}/campaigns/{CID}/pause", headers=auth) as resp:
        assert (resp.status, await resp.json()) == (200, {"_id": CID, "state": "paused"})    # the no-op


async def test_a_400_that_is_not_already_running_is_rejected(sim: VendorSimulator, lemlist: LemlistClient) -> None:
    sim.add_campaign(REF, "paused", leads=0)
    with pytest.raises(VendorRejected) as caught:
        await lemlist.resume(CID)
    assert caught.value.status == 400 and "needs leads" in caught.value.detail
    assert sim.status_of(REF) == "paused"


@pytest.mark.parametrize("status", ["draft", "ended", "archived", "errors"])
async def test_never_started(sim: VendorSimulator, lemlist: LemlistClient, status: str) -> None:
    """A start on a draft launches it; `errors` is lemlist's own hold: neither is ever started."""
    sim.add_campaign(REF, status)
    with pytest.raises(VendorRefused, match="only a paused campaign"):
        await lemlist.resume(CID)
    assert posts(sim) == [] and sim.status_of(REF) == status


async def test_a_hold_arriving_during_a_resume_retry_is_not_started(sim: VendorSimulator,
                                                                    lemlist: LemlistClient) -> None:
    sim.add_campaign(REF, "paused")
    sim.inject("lemlist", "error", status=503, method="POST")
    sim.inject("lemlist", "race", method="GET", set_status="errors", times=1)
    with pytest.raises(VendorRefused):
        await lemlist.resume(CID, current=Observation(CampaignStatus.PAUSED))
    assert sim.status_of(REF) == "errors"


async def test_a_person_resuming_in_the_ui_is_seen(sim: VendorSimulator, lemlist: LemlistClient) -> None:
    sim.add_campaign(REF, "running")
    await lemlist.pause(CID)
    stamp = sim.campaign(REF).updated_at
    sim.ui(REF, "resume")
    assert await lemlist.state(CID) is CampaignStatus.ACTIVE
    assert sim.campaign(REF).updated_at > stamp                      # the simulator's own change stamp moved


# ------------------------------------------------------------------ errors, retries, limits


async def test_429_with_retry_after_is_retried(sim: VendorSimulator, lemlist: LemlistClient) -> None:
    sim.add_campaign(REF, "running")
    sim.inject("lemlist", "rate_limit", retry_after=0.2)
    assert await lemlist.state(CID) is CampaignStatus.ACTIVE
    limited, ok = sim.calls
    assert (limited.status, ok.status) == (429, 200)
    assert ok.at - limited.at >= 0.2


async def test_the_simulated_429_carries_lemlist_headers(sim: VendorSimulator, session: aiohttp.ClientSession,
                                                          base: Callable[[str], str]) -> None:
    sim.set_limit("lemlist", (1, 30.0))
    sim.add_campaign(REF, "running")
    auth = {"Authorization": "Basic " + basic_credentials(DEFAULT_KEYS["lemlist"])}
    async with session.get(f"{base('lemlist')}/campaigns/{CID}", headers=auth) as ok:
        assert ok.status == 200 and parse_reset_date(ok.headers["X-RateLimit-Reset"]) is not None
    async with session.get(f"{base('lemlist')}/campaigns/{CID}", headers=auth) as resp:
        assert resp.status == 429
        assert int(resp.headers["Retry-After"]) >= 29
        assert (resp.headers["X-RateLimit-Limit"], resp.headers["X-RateLimit-Remaining"]) == ("20", "0")
        assert resp.headers["X-RateLimit-Reset"].endswith("GMT+0000 (Coordinated Universal Time)")
        assert 25 <= (parse_retry_after(None, None, resp.headers["X-RateLimit-Reset"]) or 0) <= 31


async def test_429_is_retried_and_the_wait_kept_when_giving_up(sim: VendorSimulator,
                                                               session: aiohttp.ClientSession,
                                                               base: Callable[[str], str]) -> None:
    sim.add_campaign(REF, "running")
    sim.inject("lemlist", "rate_limit", retry_after=30, forever=True)
    client = LemlistClient(session, api_key=DEFAULT_KEYS["lemlist"], base_url=base("lemlist"),
                           retry=RetryPolicy(max_attempts=4, base_delay=0.001, max_retry_after=5))
    with pytest.raises(VendorUnavailable) as caught:
        await client.pause(CID)
    assert (caught.value.status, caught.value.retry_after) == (429, 30)
    assert len(sim.calls) == 1 and sim.status_of(REF) == "running"


async def test_503_on_the_pause_is_retried_after_a_re_read(sim: VendorSimulator, lemlist: LemlistClient) -> None:
    sim.add_campaign(REF, "running")
    sim.inject("lemlist", "error", status=503, method="POST")
    result = await lemlist.pause(CID)
    assert (result.status, result.proven) == (CampaignStatus.PAUSED, True)
    assert [c.method for c in sim.calls] == ["GET", "POST", "GET", "POST", "GET"]


async def test_lost_answer_is_not_repeated(sim: VendorSimulator, lemlist: LemlistClient) -> None:
    sim.add_campaign(REF, "paused")
    sim.inject("lemlist", "error", status=502, method="POST", after_apply=True)
    result = await lemlist.resume(CID)
    assert (result.status, result.proven) == (CampaignStatus.ACTIVE, True)
    assert posts(sim) == [f"/campaigns/{CID}/start"]                  # started once; the re-read settled it


@pytest.mark.parametrize(("status", "error"), [(401, VendorAuthError), (403, VendorAuthError),
                                               (404, VendorNotFound)])
async def test_auth_and_not_found_are_typed_and_not_retried(sim: VendorSimulator, lemlist: LemlistClient,
                                                            status: int, error: type[VendorError]) -> None:
    sim.add_campaign(REF, "running")
    sim.inject("lemlist", "error", status=status)
    with pytest.raises(error) as caught:
        await lemlist.pause(CID)
    assert caught.value.status == status and len(sim.calls) == 1


async def test_wrong_key_unknown_campaign_and_a_user_name(sim: VendorSimulator, session: aiohttp.ClientSession,
                                                          base: Callable[[str], str], lemlist: LemlistClient) -> None:
    sim.add_campaign(REF, "running")
    wrong = LemlistClient(session, api_key="not-the-key", base_url=base("lemlist"), retry=FAST_RETRY)
    with pytest.raises(VendorAuthError):
        await wrong.state(CID)
    with pytest.raises(VendorNotFound):
        await lemlist.state("cam_doesNotExist1")
    url = f"{base('lemlist')}/campaigns/{CID}"
    user = base64.b64encode(f"me:{DEFAULT_KEYS['lemlist']}".encode()).decode()
    async with session.get(url, headers={"Authorization": f"Basic {user}"}) as resp:
        assert resp.status == 401                                    # the user must be empty
    async with session.get(url, params={"access_token": DEFAULT_KEYS["lemlist"]}) as resp:
        assert resp.status == 401                                    # the legacy query auth is refused


@pytest.mark.parametrize("bad", ["123", "cam_", "cam_abc/../x", "cam_abc?x=1", "CAM_abc", "cam_a b", "c" * 300])
async def test_invalid_id_is_refused_before_any_call(sim: VendorSimulator, lemlist: LemlistClient, bad: str) -> None:
    for call in (lemlist.state, lemlist.pause, lemlist.resume):
        with pytest.raises(VendorRefused, match="invalid lemlist campaign id"):
            await call(bad)
    assert sim.calls == []


async def test_rate_limit_is_never_exceeded(sim: VendorSimulator, session: aiohttp.ClientSession,
                                            base: Callable[[str], str]) -> None:
    sim.set_limit("lemlist", (20, 0.5))
    ids = [f"cam_load{n:03d}" for n in range(60)]
    for cid in ids:
        sim.add_campaign(f"lemlist:{cid}", "running")
    client = LemlistClient(session, api_key=DEFAULT_KEYS["lemlist"], base_url=base("lemlist"),
                           rate_limit=(20, 0.5), retry=RetryPolicy(max_attempts=1))
    results = await asyncio.gather(*(client.pause(cid) for cid in ids))
    assert {(r.status, r.proven) for r in results} == {(CampaignStatus.PAUSED, True)}
    assert [c.status for c in sim.calls] == [200] * 180
    assert max_in_window(sim.calls, 0.5) <= 20


def test_the_default_limit_is_lemlists() -> None:
    from bot.config import Settings
    from bot.testing import DEFAULT_LIMITS

    assert DEFAULT_LIMITS["lemlist"] == (20, 2.0)
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.vendor("lemlist").rate() == (20, 2.0)
    assert settings.vendor("lemlist").base_url == "https://api.lemlist.com/api"


# ------------------------------------------------------------------ the key, never shown


async def test_api_key_and_its_base64_never_leak(sim: VendorSimulator, session: aiohttp.ClientSession,
                                                 base: Callable[[str], str]) -> None:
    secret = "lemlist-SECRET-key-5e6f7a8b"
    encoded = base64.b64encode(f":{secret}".encode()).decode()
    sim.keys["lemlist"].add(secret)
    sim.add_campaign(REF, "running")
    with socket.socket() as sock:                                    # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}/api"
    fast = RetryPolicy(max_attempts=2, base_delay=0.001)
    good = LemlistClient(session, api_key=secret, base_url=base("lemlist"), retry=fast)
    wrong = LemlistClient(session, api_key=secret + "-wrong", base_url=base("lemlist"), retry=fast)
    down = LemlistClient(session, api_key=secret, base_url=dead, retry=fast)
    errors: list[BaseException] = []
    with structlog.testing.capture_logs() as logs:
        for client, campaign in ((wrong, CID), (down, CID), (good, "cam_missing1"), (good, CID)):
            if client is good and campaign == CID:
                sim.inject("lemlist", "error", status=503, forever=True)
            try:
                await client.pause(campaign)
            except VendorError as exc:
                errors.append(exc)
    assert [type(e) for e in errors] == [VendorAuthError, VendorUnavailable, VendorNotFound, VendorUnavailable]
    for leaked in (secret, encoded):
        assert_secret_absent(leaked, *errors, good, down, repr(logs))
        assert leaked not in repr(sim.calls)
    # the redactor knows the header form (registered when the client was made), as a debug tool would log it
    assert encoded not in scrub(f"headers={{'Authorization': 'Basic {encoded}'}} raw={encoded}")
    assert secret not in scrub(f"GET /api/team?access_token={secret}")


def test_js_dates_parse_and_odd_ones_do_not_crash() -> None:
    when = parse_reset_date("Tue Feb 16 2021 09:02:42 GMT+0100 (Central European Standard Time)")
    assert when == datetime(2021, 2, 16, 8, 2, 42, tzinfo=UTC)
    assert parse_reset_date("Mon Nov 23 2026 09:00:00 GMT-0530") == datetime(2026, 11, 23, 14, 30, tzinfo=UTC)
    moment = datetime(2026, 11, 23, 9, 0, 5, tzinfo=UTC)
    assert parse_reset_date(js_date(moment)) == moment
    for odd in (None, "", "1613462562", "Tue Feb 31 2021 09:02:42 GMT+0100", "Foo Bar 16 2021 09:02:42 GMT",
                "Tue Feb 16 2021 29:02:42 GMT+0100", "GMT+9999", "x" * 10_000, "Tue Feb 16 2021 09:02:42 GMT+2400"):
        assert parse_reset_date(odd) is None
    future = js_date(datetime.now(UTC) + timedelta(seconds=60))
    assert 55 <= (parse_retry_after(None, {}, future) or 0) <= 60            # the reset date as a fallback
    assert parse_retry_after("2", {}, future) == 2                           # Retry-After first
    assert parse_retry_after(future, {}) is not None                         # a date in Retry-After too
    assert parse_retry_after(None, {}, "1613462562") is None                 # epoch resets are not guessed at
    assert parse_retry_after("nan", {}, "garbage") is None
    assert parse_retry_after(None, {}, js_date(datetime.now(UTC) - timedelta(hours=1))) == 0


def test_basic_credentials_are_empty_user_and_key() -> None:
    assert base64.b64decode(basic_credentials("k3y")).decode() == ":k3y"


async def test_built_from_its_settings_block(session: aiohttp.ClientSession) -> None:
    from pydantic import SecretStr

    from bot.config import Settings
    from bot.vendors.build import build_vendors

    settings = Settings(lemlist_api_key=SecretStr("lemlist-key-from-env-11"),  # type: ignore[call-arg]
                        lemlist_webhook_secret=SecretStr("lemlist-hook-secret-22"), lemlist_rate_limit="10/2")
    client = build_vendors(settings, session)["lemlist"]
    assert isinstance(client, LemlistClient)
    assert {"lemlist-key-from-env-11", "lemlist-hook-secret-22"} <= set(settings.secrets())
    assert "lemlist-key-from-env-11" not in repr(client)
