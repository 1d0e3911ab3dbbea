"""engine.devices.geelark against a real local HTTP server (tests/geelark_fake_server.py)."""
from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid

import httpx
import pytest

from conftest import FakeTime

from engine.devices.geelark import (
    ADB_GET_DATA, ADB_SET_STATUS, PHONE_LIST, PHONE_START, PHONE_STATUS, PHONE_STOP,
    PHONE_UPLOAD_FILE, PHONE_UPLOAD_RESULT, UPLOAD_GET_URL,
    AdbInfo, GeelarkAdbNotReady, GeelarkAuthError, GeelarkClient, GeelarkCredentialsError,
    GeelarkError, GeelarkExpired, GeelarkLocked, GeelarkNotFound, GeelarkPhones,
    GeelarkRateLimited, GeelarkStartTimeout, GeelarkUnavailable, GeelarkUploadFailed, KeyAuth,
    PhoneState, RateLimiter, TokenAuth, error_for_code, load_credentials, sign,
)
from engine.errors import INFRASTRUCTURE, PostError, classify
from geelark_clients import fake_time_client
from geelark_fake_server import (
    TEST_API_KEY, TEST_APP_ID, TEST_TOKEN, Delay, FakeGeelark, Http,
)


@pytest.fixture
def server():
    with FakeGeelark() as fake:
        yield fake


@pytest.fixture
def make_client(server, fake_time):
    clients = []

    def make(auth=None, **kw) -> GeelarkClient:
        client = fake_time_client(server, fake_time, seed=7, auth=auth, **kw)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def client(make_client):
    return make_client()


# ------------------------------------------------------------------------------ authentication

def test_sign_matches_the_worked_example_in_the_docs():
    # doc.geelark.com "Request Instructions" (mirrored in aruxojuyu665/GeeLark-API-Docs).
    assert sign("eH6gQR4oHr3FsZpI36La01IW", "db6094ab-3797-4186-84d5-b0b58eebad56",
                "1716972892166", "db6094", "YjmFIUuq0oJgSDJ42fxLEb6R1qjjqf") == \
        "6280C080AF7C3CCE168F15C913E3444A00A618CB0E16038EED9811D6E3366BDD"


def test_key_auth_headers_follow_the_docs():
    headers = KeyAuth("eH6gQR4oHr3FsZpI36La01IW", "YjmFIUuq0oJgSDJ42fxLEb6R1qjjqf").headers(
        "db6094ab-3797-4186-84d5-b0b58eebad56", 1716972892166)
    assert headers == {"appId": "eH6gQR4oHr3FsZpI36La01IW",
                       "traceId": "db6094ab-3797-4186-84d5-b0b58eebad56",
                       "ts": "1716972892166", "nonce": "db6094",
                       "sign": "6280C080AF7C3CCE168F15C913E3444A00A618CB0E16038EED9811D6E3366BDD"}


def test_every_request_is_signed_afresh_and_verified(server, make_client):
    server.add_phone("p1")
    client = make_client(wall_clock=time.time)
    client.list_phones()
    client.phone_status(["p1"])
    client.phone_status(["p1"])
    assert server.auth_failures == 0
    trace_ids = [r.headers["traceid"] for r in server.requests]
    assert len(set(trace_ids)) == 3
    assert all(uuid.UUID(t).version == 4 for t in trace_ids)
    signs = {r.headers["sign"] for r in server.requests}
    assert len(signs) == 3
    assert all(abs(int(r.headers["ts"]) - time.time() * 1000) < 60_000 for r in server.requests)


def test_wrong_key_gets_the_documented_auth_error(server, make_client):
    client = make_client(KeyAuth(TEST_APP_ID, "not-the-key"))
    with pytest.raises(GeelarkAuthError) as caught:
        client.list_phones()
    assert caught.value.code == 40003
    assert server.auth_failures == 1
    assert server.count(PHONE_LIST) == 1   # auth errors are not retried


def test_token_auth_sends_only_trace_id_and_bearer(server, make_client):
    server.add_phone("p1")
    assert make_client(TokenAuth(TEST_TOKEN)).status("p1") == PhoneState.SHUT_DOWN
    headers = server.requests[-1].headers
    assert headers["authorization"] == f"Bearer {TEST_TOKEN}"
    assert not {"appid", "sign", "nonce"} & set(headers)
    with pytest.raises(GeelarkAuthError):
        make_client(TokenAuth("wrong")).status("p1")


# ------------------------------------------------------------------------------ envelopes

def test_list_phones_iterates_every_page(server, client):
    for i in range(250):
        server.add_phone(f"id{i:03d}", f"phone{i:03d}")
    phones = client.list_phones()
    assert [p.id for p in phones] == [f"id{i:03d}" for i in range(250)]
    assert phones[0].name == "phone000" and phones[0].status == PhoneState.SHUT_DOWN
    assert [(b["page"], b["pageSize"]) for b in server.bodies(PHONE_LIST)] == \
        [(1, 100), (2, 100), (3, 100)]


def test_list_phones_stops_on_an_exact_last_page(server, client):
    for i in range(200):
        server.add_phone(f"id{i}")
    assert len(client.list_phones()) == 200
    assert server.count(PHONE_LIST) == 2


def test_start_exposes_per_item_failures(server, client):
    server.add_phone("a")
    server.add_phone("b", status=3)
    result = client.start_phones(["a", "b", "missing"])
    assert result.ok == ["a"]
    assert result.failed == {"b": (43004, "env is expired"), "missing": (42001, "env not found")}
    assert not result.all_ok
    assert isinstance(result.error_for("b"), GeelarkExpired)
    assert isinstance(result.error_for("missing"), GeelarkNotFound)
    assert result.error_for("a") is None
    with pytest.raises(GeelarkNotFound):
        result.raise_for("missing")


@pytest.mark.parametrize("code", [40006, 40009])
def test_partial_and_failed_batch_envelopes_return_items(server, client, code):
    server.script(PHONE_STOP, {"code": code, "msg": "partial", "data": {
        "totalAmount": 2, "successAmount": 1, "failAmount": 1,
        "successDetails": [{"id": "a", "serialName": "n", "status": 2}],
        "failDetails": [{"code": 43005, "id": 7, "msg": "executing a task"}]}})
    result = client.stop_phones(["a", "7"])
    assert result.ok == ["a"]
    assert result.failed == {"7": (43005, "executing a task")}


def test_status_reports_all_four_states(server, client):
    for i, state in enumerate([0, 2, 3]):
        server.add_phone(f"p{i}", status=state)
    server.add_phone("booting", status=1, boot_polls=5)
    server.phones["booting"]._boot_left = 5
    result = client.phone_status(["p0", "booting", "p1", "p2", "nope"])
    assert result.details == {"p0": PhoneState.STARTED, "booting": PhoneState.STARTING,
                              "p1": PhoneState.SHUT_DOWN, "p2": PhoneState.EXPIRED}
    assert result.failed == {"nope": (42001, "env not found")}


def test_errors_are_typed_infrastructure_post_errors():
    cases = {40003: GeelarkAuthError, 40007: GeelarkRateLimited, 40014: GeelarkLocked,
             42001: GeelarkNotFound, 43004: GeelarkExpired, 49001: GeelarkAdbNotReady}
    for code, cls in cases.items():
        error = error_for_code(code, "x")
        assert type(error) is cls and isinstance(error, PostError)
        assert error.category == INFRASTRUCTURE and error.code == code
        assert classify(error).category == INFRASTRUCTURE and classify(error).retryable
    assert not issubclass(GeelarkLocked, GeelarkRateLimited)
    assert error_for_code(47002, "x").error_type == "geelark_concurrency_limit"
    assert error_for_code(43008, "x").error_type == "geelark_daily_start_limit"
    assert type(error_for_code(41001, "balance")) is GeelarkError


# ------------------------------------------------------------------------------ rate limits

def test_rate_limited_waits_for_the_next_minute_then_succeeds(server, client, fake_time):
    server.add_phone("p1")
    server.script(PHONE_STATUS, {"code": 40007, "msg": "Too many requests"})
    assert client.status("p1") == PhoneState.SHUT_DOWN
    assert server.count(PHONE_STATUS) == 2
    # 1000 s is 40 s into its minute: wait 20 s to the boundary, plus the 1 s margin.
    assert fake_time.sleeps == [pytest.approx(21.0)]


def test_rate_limited_twice_raises_with_the_wait(server, client):
    server.script(PHONE_STATUS, {"code": 40007, "msg": "Too many requests"},
                  {"code": 40007, "msg": "Too many requests"})
    with pytest.raises(GeelarkRateLimited) as caught:
        client.status("p1")
    # After the first wait the clock is at 1021 s, 1 s into its minute.
    assert caught.value.retry_after == pytest.approx(60.0)
    assert caught.value.error_type == "geelark_rate_limited"
    assert server.count(PHONE_STATUS) == 2


def test_rate_limited_write_is_retried_after_the_wait(server, client):
    # 40007 means the request was refused, so repeating a write is safe.
    server.add_phone("p1")
    server.script(PHONE_START, {"code": 40007, "msg": "Too many requests"})
    assert client.start_phones(["p1"]).ok == ["p1"]
    assert server.count(PHONE_START) == 2


def test_40014_locks_every_call_without_hitting_the_api(server, client):
    server.script(PHONE_LIST, {"code": 40014, "msg": "locked for two hours"})
    with pytest.raises(GeelarkLocked) as caught:
        client.list_phones()
    assert caught.value.retry_after == 7200
    assert caught.value.error_type == "geelark_locked"
    with pytest.raises(GeelarkLocked):
        client.status("p1")
    assert len(server.requests) == 1


def test_limiter_waits_out_the_sliding_window():
    t = FakeTime(0.0)
    limiter = RateLimiter(3, 60.0, clock=t.clock, sleep=t.sleep)
    for at in (0.0, 10.0, 20.0):
        t.now = at
        limiter.acquire("/a")
    limiter.acquire("/b")          # other endpoints have their own window
    assert t.sleeps == []
    t.now = 30.0
    limiter.acquire("/a")          # the call at 0 s leaves the window at 60 s
    assert t.sleeps == [pytest.approx(30.0)] and t.now == pytest.approx(60.0)
    limiter.acquire("/a")          # next slot: the call at 10 s leaves at 70 s
    assert t.now == pytest.approx(70.0)


def test_limiter_is_thread_safe():
    limiter = RateLimiter(5, 0.3)
    stamps: list[float] = []

    def worker():
        for _ in range(3):
            stamps.append(limiter.acquire("/x"))   # list.append is atomic

    threads = [threading.Thread(target=worker) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stamps.sort()
    assert len(stamps) == 15
    for i, start in enumerate(stamps):
        assert len([s for s in stamps[i:] if s < start + 0.3]) <= 5
    assert stamps[-1] - stamps[0] >= 0.6     # 15 calls at 5 per 0.3 s need two full windows


def test_client_calls_go_through_the_limiter(server, make_client, fake_time):
    server.add_phone("p1")
    client = make_client(limiter=RateLimiter(2, 60.0, clock=fake_time.clock,
                                             sleep=fake_time.sleep))
    for _ in range(3):
        client.status("p1")
    assert fake_time.sleeps == [pytest.approx(60.0)]


# ------------------------------------------------------------------------------ retries

def test_read_is_retried_after_a_5xx(server, client, fake_time):
    server.add_phone("p1")
    server.script(PHONE_STATUS, Http(502, "bad gateway"))
    assert client.status("p1") == PhoneState.SHUT_DOWN
    assert server.count(PHONE_STATUS) == 2
    assert len(fake_time.sleeps) == 1 and 0.25 <= fake_time.sleeps[0] <= 0.5


def test_read_gives_up_after_its_attempts_with_growing_backoff(server, client, fake_time):
    server.script(PHONE_LIST, *[Http(503)] * 4)
    with pytest.raises(GeelarkUnavailable) as caught:
        client.list_phones()
    assert not caught.value.maybe_applied
    assert server.count(PHONE_LIST) == 4
    low = [0.25, 0.5, 1.0]
    assert [lo <= s <= 2 * lo for lo, s in zip(low, fake_time.sleeps)] == [True] * 3


def test_write_is_not_retried_after_a_5xx(server, client, fake_time):
    server.add_phone("p1")
    server.script(PHONE_START, Http(502))
    with pytest.raises(GeelarkUnavailable) as caught:
        client.start_phones(["p1"])
    assert caught.value.maybe_applied
    assert server.count(PHONE_START) == 1
    assert fake_time.sleeps == []


def test_read_is_retried_after_a_timeout(server, make_client):
    server.add_phone("p1")
    server.script(PHONE_STATUS, Delay(1.0))
    client = make_client(timeout=0.2)
    assert client.status("p1") == PhoneState.SHUT_DOWN
    assert server.count(PHONE_STATUS) == 2


def test_write_is_not_retried_after_a_timeout(server, make_client):
    server.add_phone("p1")
    server.script(PHONE_STOP, Delay(1.0))
    with pytest.raises(GeelarkUnavailable) as caught:
        make_client(timeout=0.2).stop_phones(["p1"])
    assert caught.value.maybe_applied
    assert server.count(PHONE_STOP) == 1


def test_upload_to_phone_is_not_retried(server, client):
    server.script(PHONE_UPLOAD_FILE, Http(500))
    with pytest.raises(GeelarkUnavailable):
        client.upload_to_phone("p1", "https://material.example/x.mp4")
    assert server.count(PHONE_UPLOAD_FILE) == 1


# ------------------------------------------------------------------------------ start / wait

def test_wait_started_polls_until_the_phone_runs(server, client, fake_time):
    server.add_phone("p1", boot_polls=3)
    client.start_phones(["p1"])
    client.wait_started("p1", timeout=60, poll_interval=2.0)
    assert server.phones["p1"].status == 0
    assert server.count(PHONE_STATUS) == 4
    assert fake_time.sleeps == [2.0, 2.0, 2.0]


def test_wait_started_times_out(server, client):
    server.add_phone("p1", boot_polls=10_000)
    client.start_phones(["p1"])
    with pytest.raises(GeelarkStartTimeout) as caught:
        client.wait_started("p1", timeout=30, poll_interval=5.0)
    assert caught.value.error_type == "phone_start_failed"
    assert "starting" in str(caught.value)


def test_wait_started_stops_on_expired(server, client):
    server.add_phone("p1", status=3)
    with pytest.raises(GeelarkExpired):
        client.wait_started("p1", timeout=30)


def test_ensure_started_starts_and_waits(server, client):
    server.add_phone("p1", "alpha", boot_polls=2)
    phones = GeelarkPhones(client, poll_interval=1.0)
    assert phones.ensure_started("alpha") == "p1"
    assert server.phones["p1"].status == 0
    assert server.count(PHONE_START) == 1
    phones.ensure_started("alpha")          # already running: no second start
    assert server.count(PHONE_START) == 1


def test_ensure_started_after_a_timed_out_start_does_not_start_twice(server, make_client):
    server.add_phone("p1", "alpha", boot_polls=2)
    server.script(PHONE_START, Delay(1.0))   # Geelark starts the phone, the answer is late
    phones = GeelarkPhones(make_client(timeout=0.2), poll_interval=1.0)
    phones.ensure_started("alpha")
    assert server.count(PHONE_START) == 1
    assert server.phones["p1"].status == 0


def test_ensure_started_starts_again_when_the_first_start_did_not_take(server, client):
    server.add_phone("p1", "alpha")
    server.script(PHONE_START, Http(502))    # nothing applied
    GeelarkPhones(client, poll_interval=1.0).ensure_started("alpha")
    assert server.count(PHONE_START) == 2
    assert server.phones["p1"].status == 0


def test_ensure_started_refuses_expired_phones(server, client):
    server.add_phone("p1", "alpha", status=3)
    with pytest.raises(GeelarkExpired):
        GeelarkPhones(client).ensure_started("alpha")
    assert server.count(PHONE_START) == 0


# ------------------------------------------------------------------------------ ADB

def test_adb_endpoint_enables_adb_and_polls_until_ready(server, client):
    server.add_phone("p1", "alpha", status=0, adb_ready_after=2)
    phones = GeelarkPhones(client, poll_interval=1.0)
    assert phones.adb_endpoint("alpha") == ("10.1.2.3", 25219, "8c1da4")
    assert server.count(ADB_SET_STATUS) == 1
    assert server.bodies(ADB_SET_STATUS) == [{"ids": ["p1"], "open": True}]
    assert server.count(ADB_GET_DATA) == 3


def test_adb_endpoint_gives_up_when_adb_never_comes(server, client):
    server.add_phone("p1", "alpha", status=0, adb_ready_after=10_000)
    with pytest.raises(GeelarkAdbNotReady) as caught:
        GeelarkPhones(client, adb_timeout=10, poll_interval=1.0).adb_endpoint("alpha")
    assert caught.value.error_type == "adb_not_ready"


def test_adb_endpoint_reenables_when_the_phone_was_restarted(server, client):
    server.add_phone("p1", "alpha", status=0, adb_ready_after=0)
    phones = GeelarkPhones(client, poll_interval=1.0)
    phones.adb_endpoint("alpha")
    server.phones["p1"].adb_enabled = False  # restarted outside postdeck
    assert phones.adb_endpoint("alpha")[0] == "10.1.2.3"
    assert server.count(ADB_SET_STATUS) == 2


def test_adb_data_reports_per_phone_codes(server, client):
    server.add_phone("up", status=0, adb_ready_after=0)
    server.add_phone("down", status=2)
    client.set_adb(["up"])
    result = client.adb_data(["up", "down", "gone"])
    assert result.ok == ["up"] and result.details["up"] == AdbInfo("10.1.2.3", 25219, "8c1da4")
    assert result.failed["down"][0] == 42002 and result.failed["gone"][0] == 42001
    assert "8c1da4" not in repr(result.details["up"])


# ------------------------------------------------------------------------------ files

def test_push_file_uploads_raw_bytes_without_extra_headers(server, client, tmp_path):
    server.add_phone("p1", status=0)
    video = tmp_path / "clip.mp4"
    video.write_bytes(os.urandom(4096))
    resource = client.push_file("p1", video, poll_interval=1.0)
    assert list(server.uploads.values()) == [video.read_bytes()]
    put = [r for r in server.requests if r.method == "PUT"][0]
    assert set(put.headers) == {"host", "content-length"}
    assert server.bodies(UPLOAD_GET_URL) == [{"fileType": "mp4"}]
    assert server.bodies(PHONE_UPLOAD_FILE) == [{"id": "p1", "fileUrl": resource}]
    assert server.count(PHONE_UPLOAD_RESULT) == 2


def test_fake_object_store_rejects_extra_headers(server, client):
    # The check above could not fail if the fake accepted anything: make sure it does not.
    url, _ = client.get_upload_url("mp4")
    assert httpx.put(url, content=b"x", headers={"Content-Type": "video/mp4"}).status_code == 403


def test_push_file_reports_a_failed_upload(server, client, tmp_path):
    server.add_phone("p1", status=0)
    server.upload_statuses = [1, 3]
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"data")
    with pytest.raises(GeelarkUploadFailed):
        client.push_file("p1", video, poll_interval=1.0)


def test_unsupported_file_type_is_a_content_error(client):
    with pytest.raises(PostError) as caught:
        client.get_upload_url(".mov")
    assert classify(caught.value).category == "content"


# ------------------------------------------------------------------------------ provider

def test_provider_lists_names_and_resolves_them(server, client):
    server.add_phone("1", "alpha")
    server.add_phone("2", "twin")
    server.add_phone("3", "twin")
    server.add_phone("4", "")
    phones = GeelarkPhones(client)
    assert phones.list_phones() == ["alpha", "2", "3", "4"]
    assert phones.phone_id("alpha") == "1" and phones.phone_id("3") == "3"
    with pytest.raises(GeelarkError, match="shared by 2 phones"):
        phones.phone_id("twin")
    with pytest.raises(GeelarkNotFound):
        phones.phone_id("nope")


def test_provider_stop(server, client):
    server.add_phone("1", "alpha", status=0)
    server.add_phone("2", "beta", status=0)
    result = GeelarkPhones(client).stop(["alpha", "beta"])
    assert sorted(result.ok) == ["1", "2"]
    assert {p.status for p in server.phones.values()} == {2}


# ------------------------------------------------------------------------------ credentials

def test_credentials_from_the_environment():
    auth = load_credentials({"GEELARK_APP_ID": "app", "GEELARK_API_KEY": "k3y"})
    assert auth == KeyAuth("app", "k3y") and "k3y" not in repr(auth)
    with pytest.raises(GeelarkCredentialsError, match="GEELARK_API_KEY is not set"):
        load_credentials({"GEELARK_APP_ID": "app"})


def test_credentials_file_must_be_private(tmp_path):
    path = tmp_path / "geelark.json"
    path.write_text(json.dumps({"app_id": "app", "api_key": "s3cret-key"}))
    path.chmod(0o644)
    with pytest.raises(GeelarkCredentialsError) as caught:
        load_credentials({"GEELARK_CREDENTIALS_FILE": str(path)})
    message = str(caught.value)
    assert str(path) in message and "chmod 600" in message and "s3cret-key" not in message
    path.chmod(0o600)
    assert load_credentials({"GEELARK_CREDENTIALS_FILE": str(path)}) == \
        KeyAuth("app", "s3cret-key")


def test_credentials_default_file_and_token(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(GeelarkCredentialsError, match="geelark.json does not exist"):
        load_credentials({})
    path = tmp_path / ".config" / "postdeck" / "geelark.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"token": "tok-1"}))
    path.chmod(0o600)
    assert load_credentials({}) == TokenAuth("tok-1")


def test_unparseable_credentials_file_does_not_echo_it(tmp_path):
    path = tmp_path / "geelark.json"
    path.write_text('{"api_key": "leaky-key-123"')
    path.chmod(0o600)
    with pytest.raises(GeelarkCredentialsError) as caught:
        load_credentials({"GEELARK_CREDENTIALS_FILE": str(path)})
    assert "leaky-key-123" not in str(caught.value)


def test_api_key_never_appears_in_logs_reprs_or_errors(server, make_client, caplog):
    caplog.set_level(logging.DEBUG)
    server.add_phone("p1")
    server.script(PHONE_LIST, {"code": 40000, "msg": f"Unknown error for key {TEST_API_KEY}"})
    server.script(PHONE_STATUS, *[Http(500, f"upstream said {TEST_API_KEY}")] * 4)
    server.script(PHONE_START, {"code": 40007, "msg": TEST_API_KEY},
                  {"code": 40007, "msg": TEST_API_KEY})
    client = make_client()
    texts = [repr(client), repr(KeyAuth(TEST_APP_ID, TEST_API_KEY))]
    for call in (client.list_phones, lambda: client.status("p1"),
                 lambda: client.start_phones(["p1"]),
                 lambda: GeelarkClient(KeyAuth(TEST_APP_ID, TEST_API_KEY),
                                       base_url="http://127.0.0.1:9", read_attempts=1,
                                       limiter=RateLimiter(100)).list_phones()):
        with pytest.raises(GeelarkError) as caught:
            call()
        texts += [str(caught.value), repr(caught.value), str(caught.value.args)]
    assert any("Unknown error for key [redacted]" in t for t in texts)
    assert caplog.records, "the client should have logged its retries"
    for text in texts + [caplog.text] + [str(r.__dict__) for r in caplog.records]:
        assert TEST_API_KEY not in text
