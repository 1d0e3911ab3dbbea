"""The `geelark-task` backend (engine/devices/geelark_task.py), called directly, against the local
fake Geelark Open API (tests/geelark_fake_server.py, signatures checked, 127.0.0.1 only)."""
from __future__ import annotations

import logging
import string
from pathlib import Path
from types import SimpleNamespace

import pytest

from engine.devices.base import PostRequest, TaskOutcome, TaskState, WorkerSlot
from engine.devices.geelark import (
    RUN_STOPPING_TYPES, TASK_CANCEL, TASK_HISTORY, TASK_INSTAGRAM_REELS, TASK_QUERY,
    UPLOAD_GET_URL, GeelarkError, GeelarkNotFound, GeelarkPhones,
    GeelarkTaskFailed, GeelarkUnavailable, TaskStatus,
)
from engine.devices.geelark_task import GeelarkTaskBackend, make_task_backend, task_name
from engine.settings import Settings
from engine.errors import (
    ACCOUNT, CONTENT, INFRASTRUCTURE, OUTCOME_UNKNOWN, UNKNOWN, PostError, classify,
)
from geelark_clients import fake_time_client
from geelark_fake_server import TEST_API_KEY, TEST_APP_ID, Drop, FakeGeelark, Http

JOB, CLAIM = "v007.mp4_spring campaign", "0f3c9a2b7d1e4f60a1b2c3d4e5f60718"
LINK = "https://www.instagram.com/reel/ABC123/"
POLL = 15.0


@pytest.fixture
def server():
    with FakeGeelark() as fake:
        fake.add_phone("p1", "farm-01")
        fake.add_phone("p2", "farm-02")
        yield fake


@pytest.fixture
def client(server, fake_time):
    client = fake_time_client(server, fake_time, seed=5)
    yield client
    client.close()


@pytest.fixture
def backend(client):
    return GeelarkTaskBackend(client, GeelarkPhones(client), poll_interval=POLL,
                              task_timeout=300.0)


@pytest.fixture
def slot(tmp_path):
    return WorkerSlot.for_index(0, tmp_path / "logs")


@pytest.fixture
def video(tmp_path) -> Path:
    path = tmp_path / "v007.mp4"
    path.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    return path


class Calls:
    """What the worker's callbacks saw, in order, with the fake's state at each call."""

    def __init__(self, server: FakeGeelark, publishing_error: Exception | None = None):
        self.server = server
        self.publishing_error = publishing_error
        self.log: list[tuple] = []

    def on_publishing(self) -> None:
        self.log.append(("publishing", self.server.count(TASK_INSTAGRAM_REELS),
                         len(self.server.uploads)))
        if self.publishing_error is not None:
            raise self.publishing_error

    def on_task(self, task_id: str) -> None:
        self.log.append(("task", task_id))

    @property
    def task_ids(self) -> list[str]:
        return [entry[1] for entry in self.log if entry[0] == "task"]


def request_for(video: Path, calls: Calls, *, phone: str = "farm-01", caption: str = "hi #reels",
                claim: str = CLAIM) -> PostRequest:
    return PostRequest(JOB, "acct_one", phone, video, caption, claim_id=claim,
                       on_task=calls.on_task)


def post(backend, slot, video, calls, **kw):
    request = request_for(video, calls, **kw)
    backend.prepare(request.phone, slot)
    return backend.post(request, slot, calls.on_publishing)


# ------------------------------------------------------------------------------------ task names

def test_task_name_is_deterministic_short_and_safe():
    assert task_name(JOB, CLAIM) == task_name(JOB, CLAIM)
    assert task_name(JOB, CLAIM) != task_name(JOB, CLAIM[:-1] + "9")     # one per claim
    assert task_name("ab", "c") != task_name("a", "bc")
    assert task_name("a_", "b") != task_name("a", "_b")        # same readable part, same text
    assert task_name(JOB, CLAIM).startswith("postdeck-v007.mp4_spring_campaign-")
    long_a, long_b = "x" * 300 + "a", "x" * 300 + "b"                  # same readable prefix
    assert task_name(long_a, CLAIM) != task_name(long_b, CLAIM)
    weird = ["", "/", "clip 🎬 \"q\",\n\t.mp4_Kampagne ü", "\ud800lone", "../../etc/passwd",
             "".join(string.printable) * 3]
    for job_id in weird + [long_a]:
        name = task_name(job_id, CLAIM)
        assert 1 <= len(name) <= 128
        assert set(name) <= set(string.ascii_letters + string.digits + "._-"), name


# -------------------------------------------------------------------------------------- success

def test_post_uploads_creates_the_named_task_and_returns_the_share_link(server, backend, slot,
                                                                        video, fake_time):
    server.script_task(["waiting", "in_progress", "completed"], share_link=LINK)
    calls = Calls(server)
    assert post(backend, slot, video, calls) == LINK

    (task,) = server.created_tasks
    # on_publishing once, after the upload and before the create; on_task with the new id.
    assert calls.log == [("publishing", 0, 1), ("task", task.id)]
    assert task.name == task_name(JOB, CLAIM)
    assert (task.phone_id, task.caption, task.need_share_link) == ("p1", "hi #reels", True)
    (uploaded,) = server.uploads.items()
    assert task.video_url.rsplit("/", 1)[-1] == uploaded[0]
    assert uploaded[1] == video.read_bytes()
    assert server.bodies(UPLOAD_GET_URL) == [{"fileType": "mp4"}]
    assert server.count(TASK_QUERY) == 3 and server.count(TASK_HISTORY) == 0
    assert fake_time.sleeps == [POLL] * 3               # polled, never waited for real
    assert server.auth_failures == 0


def test_completed_without_a_share_link_returns_empty_and_says_so(server, backend, slot, video,
                                                                  caplog):
    server.script_task(["in_progress", "completed"], share_link="")
    with caplog.at_level(logging.WARNING, "postdeck.geelark_task"):
        assert post(backend, slot, video, Calls(server)) == ""
    assert "without a share link" in caplog.text


def test_post_by_phone_id_without_prepare(server, backend, slot, video):
    # The worker always prepares first; post still resolves the phone (here by id) itself.
    calls = Calls(server)
    link = backend.post(request_for(video, calls, phone="p2"), slot, calls.on_publishing)
    assert link.startswith("https://www.instagram.com/reel/")
    assert server.created_tasks[0].phone_id == "p2"


def test_failed_query_while_polling_is_asked_again(server, backend, slot, video):
    server.script_task(["waiting", "completed"], share_link=LINK)
    # Reads are retried 4 times by the client: 4 failures make one poll fail outright.
    server.script(TASK_QUERY, *[Http(503)] * 4)
    assert post(backend, slot, video, Calls(server)) == LINK
    assert len(server.created_tasks) == 1


# ------------------------------------------------------------------------------------- failures

@pytest.mark.parametrize("code,category,error_type", [
    (20116, ACCOUNT, "logged_out"),               # the account is not logged in
    (20221, CONTENT, "corrupted_video"),          # could not decode
    (20129, INFRASTRUCTURE, "device_offline"),
    (29997, INFRASTRUCTURE, "geelark_balance"),   # insufficient balance: stops the run
    (20003, UNKNOWN, OUTCOME_UNKNOWN),            # execution timeout: may be public
])
def test_a_failed_task_is_classified(server, backend, slot, video, code, category, error_type):
    server.script_task(["waiting", "in_progress", "failed"], fail_code=code)
    calls = Calls(server)
    with pytest.raises(GeelarkTaskFailed) as caught:
        post(backend, slot, video, calls)
    error = caught.value
    assert (error.category, error.error_type) == (category, error_type)
    cls = classify(error)                         # what the worker records
    assert (cls.category, cls.error_type) == (category, error_type)
    assert error.run_stopping == (error_type in RUN_STOPPING_TYPES)
    assert error.run_stopping == (code == 29997)
    (task,) = server.created_tasks
    assert str(code) in str(error) and task.id in str(error)
    assert calls.task_ids == [task.id]


def test_insufficient_balance_at_create_stops_the_run_and_creates_nothing(server, backend, slot,
                                                                          video):
    server.balance_ok = False                     # the create answers 41001
    calls = Calls(server)
    with pytest.raises(GeelarkError) as caught:
        post(backend, slot, video, calls)
    assert caught.value.code == 41001
    assert caught.value.error_type == "geelark_balance"
    assert classify(caught.value).error_type in RUN_STOPPING_TYPES
    assert classify(caught.value).category == INFRASTRUCTURE
    assert server.created_tasks == [] and calls.task_ids == []
    # A definite refusal: not looked up, not repeated.
    assert server.count(TASK_INSTAGRAM_REELS) == 1 and server.count(TASK_HISTORY) == 0


def test_a_cancelled_task_is_a_retryable_infrastructure_failure(server, backend, slot, video):
    server.script_task(["waiting", "cancelled"])
    with pytest.raises(PostError) as caught:
        post(backend, slot, video, Calls(server))
    assert (caught.value.category, caught.value.error_type) == (INFRASTRUCTURE, "task_cancelled")
    assert classify(caught.value).retryable


def test_a_task_still_running_at_the_timeout_is_an_unknown_outcome(server, backend, slot, video):
    server.script_task(["waiting", "in_progress"])             # runs until released
    calls = Calls(server)
    with pytest.raises(PostError) as caught:
        post(backend, slot, video, calls)
    (task,) = server.created_tasks
    assert (caught.value.category, caught.value.error_type) == (UNKNOWN, OUTCOME_UNKNOWN)
    assert not classify(caught.value).retryable
    assert task.id in str(caught.value)
    assert server.count(TASK_CANCEL) == 0 and task.status == TaskStatus.IN_PROGRESS
    assert server.count(TASK_QUERY) == 300 / POLL              # polled up to task_timeout


def test_a_task_still_waiting_at_the_timeout_is_cancelled(server, backend, slot, video):
    server.script_task(["waiting"])
    with pytest.raises(PostError) as caught:
        post(backend, slot, video, Calls(server))
    (task,) = server.created_tasks
    assert (caught.value.category, caught.value.error_type) == (INFRASTRUCTURE, "task_cancelled")
    assert task.status == TaskStatus.CANCELLED and server.count(TASK_CANCEL) == 1


def test_too_long_caption_fails_as_content_before_anything_is_sent(server, backend, slot, video):
    calls = Calls(server)
    with pytest.raises(PostError) as caught:
        post(backend, slot, video, calls, caption="x" * 2201)
    assert (caught.value.category, caught.value.error_type) == (CONTENT, "caption_rejected")
    assert calls.log == [] and server.uploads == {} and server.created_tasks == []


def test_unknown_phone_fails_in_prepare(server, backend, slot):
    with pytest.raises(GeelarkNotFound):
        backend.prepare("farm-99", slot)


def test_a_request_without_claim_id_is_refused(server, backend, slot, video):
    calls = Calls(server)
    with pytest.raises(PostError) as caught:
        post(backend, slot, video, calls, claim="")
    assert caught.value.error_type == "claim_id_missing"
    assert calls.log == [] and server.uploads == {} and server.created_tasks == []


# ----------------------------------------------------------------------- claim lost, lost answers

def test_claim_lost_at_publishing_creates_no_task(server, backend, slot, video):
    class ClaimLost(Exception):
        pass

    calls = Calls(server, publishing_error=ClaimLost("claim recovered"))
    with pytest.raises(ClaimLost):
        post(backend, slot, video, calls)
    assert calls.log == [("publishing", 0, 1)]
    assert server.count(TASK_INSTAGRAM_REELS) == 0 and server.created_tasks == []


@pytest.mark.parametrize("lost", [Drop(), Http(500, apply=True)], ids=["dropped", "500-applied"])
def test_a_lost_create_is_found_by_name_and_followed(server, backend, client, slot, video, lost):
    for i in range(3):                                         # other tasks in the history
        client.create_reels_task("p2", "https://material.example/x.mp4", "c", f"other-{i}")
    server.script(TASK_INSTAGRAM_REELS, lost)
    server.script_task(["waiting", "in_progress", "completed"], share_link=LINK)
    calls = Calls(server)
    assert post(backend, slot, video, calls) == LINK
    ours = [t for t in server.created_tasks if t.name == task_name(JOB, CLAIM)]
    assert len(ours) == 1 and calls.task_ids == [ours[0].id]
    assert server.count(TASK_INSTAGRAM_REELS) == 4             # 3 others + ours, sent once
    assert server.count(TASK_HISTORY) >= 1


@pytest.mark.parametrize("lost", [Drop(apply=False), Http(500), Http(502, apply=False)],
                         ids=["dropped-unapplied", "500", "502"])
def test_a_lost_create_with_no_task_is_an_unknown_outcome_and_not_repeated(server, backend, slot,
                                                                           video, lost):
    server.script(TASK_INSTAGRAM_REELS, lost)
    calls = Calls(server)
    with pytest.raises(PostError) as caught:
        post(backend, slot, video, calls)
    assert (caught.value.category, caught.value.error_type) == (UNKNOWN, OUTCOME_UNKNOWN)
    assert server.count(TASK_INSTAGRAM_REELS) == 1 and server.created_tasks == []
    assert server.count(TASK_HISTORY) >= 1 and calls.task_ids == []


def test_a_lost_create_whose_lookup_fails_is_an_unknown_outcome(server, backend, slot, video):
    server.script(TASK_INSTAGRAM_REELS, Drop())
    server.script(TASK_HISTORY, *[Http(503)] * 4)
    with pytest.raises(PostError) as caught:
        post(backend, slot, video, Calls(server))
    assert caught.value.error_type == OUTCOME_UNKNOWN
    assert server.count(TASK_INSTAGRAM_REELS) == 1 and len(server.created_tasks) == 1


def test_a_task_whose_id_cannot_be_recorded_is_cancelled_while_waiting(server, backend, slot,
                                                                       video):
    calls = Calls(server)

    def on_task(task_id: str) -> None:
        raise OSError("No space left on device")

    request = PostRequest(JOB, "acct_one", "farm-01", video, "c", claim_id=CLAIM, on_task=on_task)
    with pytest.raises(OSError):
        backend.post(request, slot, calls.on_publishing)
    (task,) = server.created_tasks
    assert task.status == TaskStatus.CANCELLED


# ------------------------------------------------------------------------------ find, cancel

def make_task(server, client, lifecycle, *, job=JOB, claim=CLAIM, **script) -> str:
    server.script_task(lifecycle, **script)
    return client.create_reels_task("p1", "https://material.example/v.mp4", "c",
                                    task_name(job, claim))


@pytest.mark.parametrize("by_name", [False, True], ids=["by-id", "by-name"])
def test_find_task_maps_every_state(server, backend, client, by_name):
    cases = {
        "done": (["completed"], {"share_link": LINK}),
        "logged-out": (["failed"], {"fail_code": 20116}),
        "offline": (["failed"], {"fail_code": 20129}),
        "cancelled": (["cancelled"], {}),
        "waiting": (["waiting"], {}),
        "running": (["in_progress"], {}),
        "odd": ([9], {}),                                      # a status we do not know
    }
    ids = {claim: make_task(server, client, life, claim=claim, **kw)
           for claim, (life, kw) in cases.items()}

    def find(claim: str) -> TaskOutcome:
        return backend.find_task(JOB, claim, "" if by_name else ids[claim])

    assert find("done") == TaskOutcome(TaskState.SUCCESS, ids["done"], video_id=LINK)
    out = find("logged-out")
    assert (out.state, out.task_id, out.category, out.error_type) == \
        (TaskState.FAILED, ids["logged-out"], ACCOUNT, "logged_out")
    assert "20116" in out.error and "not logged in" in out.error
    out = find("offline")
    assert (out.state, out.category, out.error_type) == \
        (TaskState.FAILED, INFRASTRUCTURE, "device_offline")
    out = find("cancelled")
    assert (out.state, out.category, out.error_type) == \
        (TaskState.FAILED, INFRASTRUCTURE, "task_cancelled")
    for claim in ("waiting", "running", "odd"):
        assert find(claim) == TaskOutcome(TaskState.RUNNING, ids[claim])
    assert server.count(TASK_HISTORY) > 0 if by_name else server.count(TASK_HISTORY) == 0


def test_find_task_missing(server, backend, client):
    make_task(server, client, ["completed"], claim="another-claim")
    assert backend.find_task(JOB, CLAIM, "").state == TaskState.MISSING
    assert backend.find_task(JOB, CLAIM, "424242").state == TaskState.MISSING


def test_find_task_by_name_recovers_a_task_created_just_before_a_crash(server, backend, slot,
                                                                       video):
    """The worker died between create and on_task: the name alone leads to the task."""
    server.script_task(["waiting", "completed"], share_link=LINK)

    def crash(task_id: str) -> None:
        raise SystemExit(9)

    request = PostRequest(JOB, "acct_one", "farm-01", video, "c", claim_id=CLAIM, on_task=crash)
    with pytest.raises(SystemExit):
        backend.post(request, slot, lambda: None)
    (task,) = server.created_tasks
    assert backend.find_task(JOB, CLAIM, "") == TaskOutcome(TaskState.RUNNING, task.id)
    # Asked again later, it has posted.
    assert backend.find_task(JOB, CLAIM, "") == \
        TaskOutcome(TaskState.SUCCESS, task.id, video_id=LINK)


def test_find_task_raises_when_geelark_cannot_be_asked(server, backend, client):
    task_id = make_task(server, client, ["completed"])
    server.script(TASK_QUERY, *[Http(503)] * 4)
    with pytest.raises(GeelarkUnavailable):
        backend.find_task(JOB, CLAIM, task_id)
    server.script(TASK_HISTORY, *[Http(503)] * 4)
    with pytest.raises(GeelarkUnavailable):
        backend.find_task(JOB, CLAIM, "")


def test_cancel_task_cancels_only_a_waiting_task(server, backend, client):
    waiting = make_task(server, client, ["waiting"], claim="w")
    running = make_task(server, client, ["in_progress"], claim="r")
    done = make_task(server, client, ["completed"], claim="d")

    assert backend.cancel_task(waiting) is True
    assert server.tasks[waiting].status == TaskStatus.CANCELLED
    assert server.bodies(TASK_CANCEL) == [{"ids": [waiting]}]

    assert backend.cancel_task(running) is False
    assert backend.cancel_task(done) is False
    assert backend.cancel_task("424242") is False
    assert server.count(TASK_CANCEL) == 1                      # never asked for the others
    assert server.tasks[running].status == TaskStatus.IN_PROGRESS


def test_cancel_task_whose_answer_is_lost_checks_the_status(server, backend, client):
    applied = make_task(server, client, ["waiting"], claim="a")
    server.script(TASK_CANCEL, Http(500, apply=True))
    assert backend.cancel_task(applied) is True
    unapplied = make_task(server, client, ["waiting"], claim="u")
    server.script(TASK_CANCEL, Http(500))
    assert backend.cancel_task(unapplied) is False
    assert server.tasks[unapplied].status == TaskStatus.WAITING


def test_power_off_and_stop_phones(server, backend, slot):
    server.phones["p1"].status = server.phones["p2"].status = 0
    backend.power_off("farm-01")
    assert server.phones["p1"].status == 2 and server.phones["p2"].status == 0
    backend.stop_phones(["farm-02"])
    assert server.phones["p2"].status == 2
    backend.stop_phones([])


# -------------------------------------------------------------------------------- construction

def test_make_task_backend_uses_the_geelark_credentials(server, monkeypatch, tmp_path):
    monkeypatch.setenv("GEELARK_APP_ID", TEST_APP_ID)
    monkeypatch.setenv("GEELARK_API_KEY", TEST_API_KEY)
    monkeypatch.setenv("GEELARK_BASE_URL", server.url)
    ctx = SimpleNamespace(host_state_dir=tmp_path / "host",
                          settings=Settings(task_poll_seconds=2.5))
    checking = make_task_backend(ctx, checking=True)
    assert checking.name == "geelark-task"
    assert sorted(checking.list_phones()) == ["farm-01", "farm-02"]
    checking.check()
    assert not (tmp_path / "host").exists()                    # a check leaves no file behind
    running = make_task_backend(ctx)
    # campaign.json's task_poll_seconds sets how often a running task is asked about
    assert (running.poll_interval, running.task_timeout) == (2.5, 1800.0)
    assert sorted(running.list_phones()) == ["farm-01", "farm-02"]
    assert server.auth_failures == 0
