"""Geelark's own publishing tasks (engine.devices.geelark: create_reels_task, query/detail/history,
cancel/restart, upload_video, classify_task_failure) against the local fake Open API
(tests/geelark_fake_server.py)."""
from __future__ import annotations

import pytest

from engine.devices.geelark import (
    RUN_STOPPING_TYPES, TASK_CANCEL, TASK_HISTORY, TASK_INSTAGRAM_REELS, TASK_QUERY,
    UPLOAD_GET_URL, GeelarkAuthError, GeelarkClient, GeelarkError, GeelarkNotFound,
    GeelarkTaskFailed, GeelarkTaskSearchIncomplete, GeelarkTaskTimeout, GeelarkUnavailable, KeyAuth,
    TaskInfo, TaskStatus, TokenAuth, classify_task_failure,
)
from engine.errors import (
    ACCOUNT, BLOCKING_TYPES, CONTENT, INFRASTRUCTURE, OUTCOME_UNKNOWN, UNKNOWN, PostError, classify,
)
from geelark_clients import fake_time_client
from geelark_fake_server import (
    TEST_APP_ID, TEST_TOKEN, Delay, Drop, FakeGeelark, Http,
)

VIDEO = "https://material.example/open-upload/clip.mp4"


@pytest.fixture
def server():
    with FakeGeelark() as fake:
        fake.add_phone("p1", "farm-01")
        fake.add_phone("p2", "farm-02")
        yield fake


@pytest.fixture
def make_client(server, fake_time):
    clients = []

    def make(auth=None, **kw) -> GeelarkClient:
        client = fake_time_client(server, fake_time, seed=3, auth=auth, **kw)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def client(make_client):
    return make_client()


# ----------------------------------------------------------------------------- happy path

def test_create_and_poll_to_completion_with_share_link(server, client, fake_time):
    server.script_task(["waiting", "in_progress", "completed"],
                       share_link="https://www.instagram.com/reel/ABC123/")
    task_id = client.create_reels_task("p1", VIDEO, "hello #reels", "postdeck-job-1-a1")

    (created,) = server.created_tasks
    assert created.id == task_id
    assert (created.name, created.phone_id, created.caption, created.video_url) == \
        ("postdeck-job-1-a1", "p1", "hello #reels", VIDEO)
    assert created.schedule_at == int(fake_time.now)    # default: now
    assert created.need_share_link
    assert server.bodies(TASK_INSTAGRAM_REELS)[0]["video"] == [VIDEO]

    task = client.wait_task(task_id, timeout=600, poll_interval=5)
    assert task.status == TaskStatus.COMPLETED and task.succeeded and task.finished
    assert task.share_link == "https://www.instagram.com/reel/ABC123/"
    assert (task.id, task.name, task.phone_id, task.phone_name) == \
        (task_id, "postdeck-job-1-a1", "p1", "farm-01")
    assert task.classification() is None and task.error() is None
    assert server.count(TASK_QUERY) == 3
    assert fake_time.sleeps == [5, 5]
    assert server.auth_failures == 0


def test_schedule_remark_and_share_link_flag_go_through(server, client):
    task_id = client.create_reels_task("p2", VIDEO, "c", "n-2", schedule_at=1_741_846_843.9,
                                       remark="campaign demo", need_share_link=False)
    body = server.bodies(TASK_INSTAGRAM_REELS)[0]
    assert body["scheduleAt"] == 1_741_846_843 and body["remark"] == "campaign demo"
    assert "needShareLink" not in body
    task = client.wait_task(task_id, poll_interval=1)
    assert task.succeeded and task.share_link == ""     # not asked for, not given


def test_release_a_task_that_stays_in_progress(server, client):
    server.script_task(["waiting", "in_progress"])
    task_id = client.create_reels_task("p1", VIDEO, "c", "held")
    for _ in range(4):
        client.query_task(task_id)
    assert client.query_task(task_id).status == TaskStatus.IN_PROGRESS
    server.release_task(task_id, ["completed"])
    task = client.wait_task(task_id, poll_interval=1)
    assert task.succeeded and task.share_link.startswith("https://www.instagram.com/reel/")


def test_task_detail_has_logs_but_no_share_link(server, client):
    task_id = client.create_reels_task("p1", VIDEO, "c", "detail")
    client.wait_task(task_id, poll_interval=1)
    detail = client.task_detail(task_id)
    assert detail.status == TaskStatus.COMPLETED and detail.logs and detail.result_images
    assert detail.share_link == "" and detail.cost == 60
    with pytest.raises(GeelarkError) as caught:
        client.task_detail("999")
    assert caught.value.code == 48002 and caught.value.error_type == "task_not_found"


def test_query_tasks_sends_at_most_100_ids_per_call(server, client):
    ids = [client.create_reels_task("p1", VIDEO, "c", f"n{i}") for i in range(3)]
    tasks = client.query_tasks([str(i) for i in range(147)] + ids)
    assert sorted(t.id for t in tasks) == sorted(ids)
    assert [len(b["ids"]) for b in server.bodies(TASK_QUERY)] == [100, 50]


# ----------------------------------------------------------------------------- failures

FAILURES = [
    # code, (category, error_type)
    (20116, (ACCOUNT, "logged_out")),
    (20136, (ACCOUNT, "banned")),
    (20137, (ACCOUNT, "suspended")),
    (20145, (ACCOUNT, "suspended")),
    (20264, (ACCOUNT, "suspended")),
    (20107, (CONTENT, "corrupted_video")),
    (20221, (CONTENT, "corrupted_video")),
    (20204, (CONTENT, "upload_rejected")),
    (20100, (INFRASTRUCTURE, "network")),
    (20129, (INFRASTRUCTURE, "device_offline")),
    (29996, (INFRASTRUCTURE, "proxy_failed")),
    (20257, (INFRASTRUCTURE, "upload_timeout")),
    (20002, (INFRASTRUCTURE, "phone_busy")),
    (29995, (INFRASTRUCTURE, "geelark_maintenance")),
    (29997, (INFRASTRUCTURE, "geelark_balance")),
    (29998, (INFRASTRUCTURE, "phone_deleted")),
    (20003, (UNKNOWN, OUTCOME_UNKNOWN)),
    (29999, (UNKNOWN, "geelark_task_failed")),
    (28888, (UNKNOWN, "geelark_task_failed")),
]


@pytest.mark.parametrize("code,expected", FAILURES)
def test_each_failure_class_is_classified(server, client, code, expected):
    server.script_task(["waiting", "in_progress", "failed"], fail_code=code)
    task_id = client.create_reels_task("p1", VIDEO, "c", f"fail-{code}")
    task = client.wait_task(task_id, poll_interval=1)
    assert task.status == TaskStatus.FAILED and not task.succeeded
    assert task.fail_code == code and task.fail_desc
    assert task.classification() == expected

    error = task.error()
    assert isinstance(error, GeelarkTaskFailed) and isinstance(error, PostError)
    assert str(code) in str(error) and task_id in str(error)
    cls = classify(error)
    assert (cls.category, cls.error_type) == expected
    category, error_type = expected
    assert cls.retryable == (category in (INFRASTRUCTURE, UNKNOWN)
                             and error_type != OUTCOME_UNKNOWN)
    assert error.run_stopping == (error_type in ("geelark_balance", "phone_deleted"))
    if category == ACCOUNT:
        assert error_type in BLOCKING_TYPES   # the account gets blocked, not retried


def test_classify_task_failure_without_a_listed_code():
    assert classify_task_failure("20116", "") == (ACCOUNT, "logged_out")
    assert classify_task_failure(None, "Insufficient balance") == \
        (INFRASTRUCTURE, "geelark_balance")
    assert classify_task_failure(31000, "The cloud phone has been deleted") == \
        (INFRASTRUCTURE, "phone_deleted")
    assert classify_task_failure(31001, "Video upload was rejected") == (CONTENT, "upload_rejected")
    assert classify_task_failure(31002, "the account is not logged in") == (ACCOUNT, "logged_out")
    # 29999 is Geelark's own "unknown error": its text does not turn it into something else.
    assert classify_task_failure(29999, "no network maybe") == (UNKNOWN, "geelark_task_failed")
    assert classify_task_failure(None, None) == (UNKNOWN, "geelark_task_failed")
    assert classify_task_failure("x", "???") == (UNKNOWN, "geelark_task_failed")
    assert RUN_STOPPING_TYPES >= {"geelark_balance", "phone_deleted", "phone_expired"}


def test_insufficient_balance_at_creation_is_run_stopping_and_not_retried(server, client):
    server.balance_ok = False
    with pytest.raises(GeelarkError) as caught:
        client.create_reels_task("p1", VIDEO, "c", "broke")
    assert caught.value.code == 41001
    assert caught.value.error_type in RUN_STOPPING_TYPES
    assert classify(caught.value).error_type == "geelark_balance"
    assert server.count(TASK_INSTAGRAM_REELS) == 1 and server.created_tasks == []


def test_unknown_phone_at_creation(server, client):
    with pytest.raises(GeelarkNotFound):
        client.create_reels_task("nope", VIDEO, "c", "x")


def test_bad_arguments_never_reach_geelark(server, client):
    with pytest.raises(PostError) as caught:
        client.create_reels_task("p1", VIDEO, "x" * 2201, "long-caption")
    assert (caught.value.category, caught.value.error_type) == (CONTENT, "caption_rejected")
    with pytest.raises(ValueError):
        client.create_reels_task("p1", VIDEO, "c", "n" * 129)
    with pytest.raises(ValueError):
        client.create_reels_task("p1", VIDEO, "c", "")
    assert server.count(TASK_INSTAGRAM_REELS) == 0


# ---------------------------------------------------------------- lost answers, lookup by name

@pytest.mark.parametrize("lost", [Http(500, apply=True), Drop(), Delay(1.0)],
                         ids=["500-after-create", "connection-dropped", "timeout"])
def test_lost_create_response_then_find_by_name(server, make_client, lost):
    client = make_client(timeout=0.3)
    for i in range(5):                                   # other tasks: several history pages
        client.create_reels_task("p2" if i % 2 else "p1", VIDEO, "c", f"other-{i}")
    server.script(TASK_INSTAGRAM_REELS, lost)
    with pytest.raises(GeelarkUnavailable) as caught:
        client.create_reels_task("p1", VIDEO, "lost caption", "postdeck-job-7-a1")
    assert caught.value.maybe_applied
    assert server.count(TASK_INSTAGRAM_REELS) == 6       # not retried
    created = server.created_tasks[-1]
    assert created.name == "postdeck-job-7-a1"

    history_calls = server.count(TASK_HISTORY)
    (found,) = client.find_tasks_by_name("postdeck-job-7-a1", page_size=2)
    assert found.id == created.id and found.phone_id == "p1"
    assert found.status == TaskStatus.WAITING
    # 6 tasks, 2 a page: three full pages, then an empty one (a full page may not be the last;
    # `total` is not trusted to end the search early).
    assert server.count(TASK_HISTORY) - history_calls == 4
    assert client.find_tasks_by_name("postdeck-job-7-a1", phone_id="p2") == []
    assert client.find_tasks_by_name("never-created") == []
    # Then the task is followed like any other.
    assert client.wait_task(found.id, poll_interval=1).succeeded


def test_find_by_name_returns_every_duplicate_with_its_share_link(server, client):
    first = client.create_reels_task("p1", VIDEO, "c", "dup")
    client.create_reels_task("p1", VIDEO, "c", "other")
    second = client.create_reels_task("p1", VIDEO, "c", "dup")
    client.wait_task(first, poll_interval=1)
    found = client.find_tasks_by_name("dup")
    assert sorted(t.id for t in found) == sorted([first, second])
    by_id = {t.id: t for t in found}
    assert by_id[first].succeeded and by_id[first].share_link   # re-read with task/query


def test_find_by_name_says_when_it_gave_up_early(server, client):
    for i in range(5):
        client.create_reels_task("p1", VIDEO, "c", f"t{i}")
    with pytest.raises(GeelarkTaskSearchIncomplete):
        client.find_tasks_by_name("t0", page_size=2, max_pages=2)
    assert len(client.find_tasks_by_name("t0", page_size=2, max_pages=3)) == 1


# ------------------------------------------------------------------------------- cancel, restart

def test_cancel_a_running_task(server, client):
    server.script_task(["waiting", "in_progress"])
    task_id = client.create_reels_task("p1", VIDEO, "c", "to-cancel")
    with pytest.raises(GeelarkTaskTimeout) as caught:
        client.wait_task(task_id, timeout=30, poll_interval=10)
    assert caught.value.task.status == TaskStatus.IN_PROGRESS
    assert server.count(TASK_QUERY) == 4

    result = client.cancel_tasks([task_id, "12345"])
    assert result.ok == [task_id]
    assert result.failed["12345"][0] == 48002
    assert result.error_for("12345").error_type == "task_not_found"
    task = client.query_task(task_id)
    assert task.status == TaskStatus.CANCELLED and task.finished and not task.succeeded
    assert task.classification() == (INFRASTRUCTURE, "task_cancelled")

    again = client.cancel_tasks([task_id])        # already finished: 48001 per item
    assert again.failed[task_id][0] == 48001
    assert again.error_for(task_id).error_type == "task_state_conflict"


def test_cancel_is_not_retried(server, client):
    task_id = client.create_reels_task("p1", VIDEO, "c", "x")
    server.script(TASK_CANCEL, Http(502))
    with pytest.raises(GeelarkUnavailable) as caught:
        client.cancel_tasks([task_id])
    assert caught.value.maybe_applied and server.count(TASK_CANCEL) == 1


def test_restart_a_failed_task(server, client):
    server.script_task(["failed"], fail_code=20100)
    task_id = client.create_reels_task("p1", VIDEO, "c", "flaky")
    assert client.query_task(task_id).classification() == (INFRASTRUCTURE, "network")
    assert client.restart_tasks([task_id]).ok == [task_id]
    assert client.wait_task(task_id, poll_interval=1).succeeded
    assert client.restart_tasks([task_id]).failed[task_id][0] == 48001   # completed: no restart


# ------------------------------------------------------------------------------------- upload

def test_upload_video_round_trip(server, client, tmp_path):
    clip = tmp_path / "clip.MP4"
    payload = bytes(range(256)) * 40
    clip.write_bytes(payload)
    url = client.upload_video(clip)
    name = url.rsplit("/", 1)[-1]
    assert server.uploads[name] == payload
    assert server.bodies(UPLOAD_GET_URL) == [{"fileType": "mp4"}]
    (put,) = [r for r in server.requests if r.method == "PUT"]
    assert set(put.headers) <= {"host", "content-length"}          # no auth headers to OSS
    task_id = client.create_reels_task("p1", url, "c", "uploaded")
    assert server.created_tasks[0].video_url == url
    assert client.wait_task(task_id, poll_interval=1).succeeded


def test_upload_video_refuses_missing_and_unsupported_files(server, client, tmp_path):
    with pytest.raises(PostError) as caught:
        client.upload_video(tmp_path / "missing.mp4")
    assert (caught.value.category, caught.value.error_type) == (CONTENT, "video_missing")
    text = tmp_path / "notes.txt"
    text.write_text("x")
    with pytest.raises(PostError) as caught:
        client.upload_video(text)
    assert caught.value.category == CONTENT
    assert server.requests == []


# ------------------------------------------------------------------------------- signatures

def test_task_calls_are_signed_and_a_wrong_key_is_refused(server, make_client):
    with pytest.raises(GeelarkAuthError) as caught:
        make_client(KeyAuth(TEST_APP_ID, "wrong-key")).create_reels_task("p1", VIDEO, "c", "x")
    assert caught.value.code == 40003
    assert server.created_tasks == [] and server.auth_failures == 1

    good = make_client()
    task_id = good.create_reels_task("p1", VIDEO, "c", "signed")
    good.query_tasks([task_id])
    good.find_tasks_by_name("signed")
    for request in server.requests[1:]:
        assert request.headers["appid"] == TEST_APP_ID and request.headers["sign"]
    assert server.auth_failures == 1

    assert make_client(TokenAuth(TEST_TOKEN)).query_task(task_id).id == task_id
    with pytest.raises(GeelarkAuthError):
        make_client(TokenAuth("nope")).cancel_tasks([task_id])
    assert server.tasks[task_id].status != TaskStatus.CANCELLED


# ------------------------------------------------------------------------------------ parsing

def test_task_info_is_parsed_leniently():
    info = TaskInfo.from_api({"id": 42, "status": "4", "failCode": "20136", "failDesc": None,
                              "scheduleAt": "17", "cost": "x", "logs": None})
    assert (info.id, info.status, info.fail_code, info.schedule_at, info.cost) == \
        ("42", TaskStatus.FAILED, 20136, 17, None)
    assert info.classification() == (ACCOUNT, "banned")
    odd = TaskInfo.from_api({"id": "1", "status": 9, "failCode": 0})
    assert odd.status is None and odd.raw_status == 9 and not odd.finished
    assert odd.fail_code is None and odd.classification() is None
    assert TaskInfo.from_api({}).id == ""
    assert [s.value for s in TaskStatus] == [1, 2, 3, 4, 7]
