"""The posting flow as data (engine/flows/instagram_reel.json) and its walker (engine/devices/flow.py).

Loading and validation run without a phone; walking runs the bundled flow on the fake Android
phone of tests/appium_driver through a real Appium server from npm.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import time
from pathlib import Path

import pytest
from appium.webdriver.common.appiumby import AppiumBy

from appium_fixtures import appium_server, events, screen, session_for  # noqa: F401  (fixtures)
from engine.devices.flow import FLOWS_DIR, Flow, FlowError, Selector, load_flow, parse_flow, run_flow
from engine.errors import ACCOUNT, INFRASTRUCTURE, OUTCOME_UNKNOWN, PostError, category_of, classify

SHARE = "tap:com.instagram.android:id/share_button"
CAPTION = "Sunset at the pier \U0001F305 #travel \"quoted\" it's {not a placeholder}"
BUNDLED = json.loads((FLOWS_DIR / "instagram_reel.json").read_text(encoding="utf-8"))


def shortened(flow: Flow, seconds: float) -> Flow:
    """The same flow with every step's timeout cut, for tests that wait for something absent."""
    steps = tuple(dataclasses.replace(s, timeout=min(s.timeout, seconds)) for s in flow.steps)
    return dataclasses.replace(flow, steps=steps, poll_interval=0.2)


class Recorder:
    """on_publishing that notes what the phone had seen when it was called."""

    def __init__(self, session, fail: Exception | None = None):
        self.session = session
        self.fail = fail
        self.calls: list[list[str]] = []

    def __call__(self) -> None:
        self.calls.append(events(self.session))
        if self.fail is not None:
            raise self.fail


# --------------------------------------------------------------------------- loading


def test_bundled_flow_is_valid_and_complete():
    flow = load_flow("instagram_reel")
    assert flow.app_package == "com.instagram.android"
    assert [s.name for s in flow.steps] == [
        "open_app", "new_post", "allow_gallery_access", "choose_reel", "pick_video",
        "next_from_gallery", "next_from_editor", "caption", "share", "confirm_shared"]
    assert [s.name for s in flow.steps if s.publishing] == ["share"]
    assert flow.steps[-1].action == "wait"
    assert {e.error_type for e in flow.error_screens} == {
        "suspended", "disabled", "verification", "logged_out", "rate_limited", "app_update_required"}
    assert load_flow(FLOWS_DIR / "instagram_reel.json") == flow


def _broken(mutate) -> dict:
    raw = copy.deepcopy(BUNDLED)
    mutate(raw)
    return raw


@pytest.mark.parametrize("mutate, where, problem", [
    (lambda r: r["steps"][3].update(timeot=3), "steps[3] (choose_reel).timeot", "unknown key"),
    (lambda r: r["steps"][1]["selectors"].append({"resource_id": "x"}),
     "steps[1] (new_post).selectors[4].resource_id", "unknown selector kind"),
    (lambda r: r["steps"][1]["selectors"].append({"id": "a", "text": "b"}),
     "steps[1] (new_post).selectors[4]", "exactly one key"),
    (lambda r: r["steps"][1].update(timeout=0), "steps[1] (new_post).timeout", "number > 0"),
    (lambda r: r["steps"][1].update(action="click"), "steps[1] (new_post).action", "unknown action"),
    (lambda r: r["steps"][8].pop("publishing"), "steps", "exactly one step"),
    (lambda r: r["steps"][1].update(publishing=True), "steps", "found 2"),
    (lambda r: r["steps"][7].update(text="{caption} {hashtags}"), "steps[7] (caption).text", "hashtags"),
    (lambda r: r["steps"][2].update(name="open_app"), "steps[2].name", "duplicate"),
    (lambda r: r["steps"][1].update(selectors=[]), "steps[1] (new_post).selectors", "non-empty"),
    (lambda r: r["error_screens"][0].update(error_type="suspend"), "error_screens[0] (suspend).error_type",
     "not an error type"),
    (lambda r: r.pop("app_package"), "app_package", "missing"),
])
def test_invalid_flow_names_file_and_key(tmp_path: Path, mutate, where, problem):
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(_broken(mutate)), encoding="utf-8")
    with pytest.raises(FlowError) as info:
        load_flow(path)
    message = str(info.value)
    assert message.startswith(f"{path}: {where}: "), message
    assert problem in message


def test_unreadable_flow_files(tmp_path: Path):
    with pytest.raises(FlowError, match=r"no such flow file \(bundled flows: instagram_reel\)"):
        load_flow("tiktok_video")
    bad = tmp_path / "bad.json"
    bad.write_text('{"name": "x",\n "steps": [,]}', encoding="utf-8")
    with pytest.raises(FlowError, match=rf"{bad}: not valid JSON: line 2"):
        load_flow(bad)


def test_error_screen_may_name_its_category(tmp_path: Path):
    raw = copy.deepcopy(BUNDLED)
    raw["error_screens"].append({"error_type": "shadowbanned", "category": "account",
                                 "selectors": [{"text": "Limited reach"}]})
    flow = parse_flow(raw)
    assert flow.error_screens[-1].category == ACCOUNT


def test_selectors_become_appium_locators():
    assert Selector("id", "a:id/b").locator() == (AppiumBy.ID, "a:id/b")
    assert Selector("accessibility_id", "Create").locator() == (AppiumBy.ACCESSIBILITY_ID, "Create")
    assert Selector("text", "Share").locator() == (AppiumBy.XPATH, '//*[@text="Share"]')
    assert Selector("text_contains", 'say "hi"').locator() == (AppiumBy.XPATH, "//*[contains(@text, 'say \"hi\"')]")
    assert Selector("text", """it's "x\"""").locator() == (
        AppiumBy.XPATH, """//*[@text=concat("it's ", '"', "x", '"', "")]""")


# --------------------------------------------------------------------------- walking


@pytest.mark.appium
def test_full_post_calls_on_publishing_once_right_before_share(session_for):
    session = session_for("home")
    publishing = Recorder(session)
    started = time.monotonic()
    run_flow(session.driver, load_flow("instagram_reel"), caption=CAPTION, on_publishing=publishing)
    elapsed = time.monotonic() - started

    assert len(publishing.calls) == 1
    before = publishing.calls[0]
    after = events(session)
    # on_publishing ran after the caption was typed and before Share was tapped, and Share was
    # the very next thing the phone saw.
    assert SHARE not in before
    assert f"type:com.instagram.android:id/caption_input_text_view:{CAPTION}" in before
    assert after[:len(before)] == before
    assert after[len(before):] == [SHARE, "screen:shared"]
    assert after.count(SHARE) == 1
    assert [e for e in after if e.startswith("tap:")] == [
        "tap:com.instagram.android:id/creation_tab",
        "tap:com.instagram.android:id/cam_dest_clips",
        "tap:com.instagram.android:id/gallery_grid_item_thumbnail",
        "tap:com.instagram.android:id/next_button_textview",
        "tap:com.instagram.android:id/clips_right_action_button",
        SHARE,
    ]
    # The "shared" toast shows 0.8 s after the feed comes back: the walker polled for it.
    assert elapsed >= 0.8


@pytest.mark.appium
@pytest.mark.parametrize("start_screen, error_type", [
    ("suspended", "suspended"),
    ("disabled", "disabled"),
    ("checkpoint", "verification"),
    ("logged_out", "logged_out"),
    ("action_blocked", "rate_limited"),
    ("update_required", "app_update_required"),
])
def test_error_screen_gives_its_error_type(session_for, start_screen, error_type):
    session = session_for(start_screen)
    publishing = Recorder(session)
    started = time.monotonic()
    with pytest.raises(PostError) as info:
        run_flow(session.driver, load_flow("instagram_reel"), caption="c", on_publishing=publishing)
    assert info.value.error_type == error_type
    assert classify(info.value).error_type == error_type
    assert info.value.category == category_of(error_type)
    assert publishing.calls == []
    # Found on the first look, not after open_app's 45 s timeout.
    assert time.monotonic() - started < 5


@pytest.mark.appium
def test_account_errors_are_account_category(session_for):
    session = session_for("suspended")
    with pytest.raises(PostError) as info:
        run_flow(session.driver, load_flow("instagram_reel"), caption="c", on_publishing=lambda: None)
    assert info.value.category == ACCOUNT
    assert not classify(info.value).retryable


@pytest.mark.appium
def test_action_blocked_after_share_is_rate_limited(session_for):
    session = session_for("home", screenOverrides={"shared": "action_blocked"})
    publishing = Recorder(session)
    with pytest.raises(PostError) as info:
        run_flow(session.driver, load_flow("instagram_reel"), caption="c", on_publishing=publishing)
    assert info.value.error_type == "rate_limited"
    assert info.value.category == INFRASTRUCTURE
    assert len(publishing.calls) == 1
    assert screen(session) == "action_blocked"


@pytest.mark.appium
def test_on_publishing_raising_means_share_is_never_tapped(session_for):
    session = session_for("home")

    class ClaimLost(Exception):
        pass

    publishing = Recorder(session, fail=ClaimLost("claim taken over by worker 3"))
    with pytest.raises(ClaimLost, match="worker 3"):
        run_flow(session.driver, load_flow("instagram_reel"), caption="c", on_publishing=publishing)
    assert len(publishing.calls) == 1
    assert SHARE not in events(session)
    assert screen(session) == "reel_share"


@pytest.mark.appium
def test_optional_permission_dialog_is_tapped_when_it_shows(session_for):
    session = session_for("home", screenOverrides={"new_post": "photos_permission"})
    run_flow(session.driver, load_flow("instagram_reel"), caption="c", on_publishing=lambda: None)
    seen = events(session)
    assert "tap:com.android.permissioncontroller:id/permission_allow_button" in seen
    assert seen[-1] == "screen:shared"


@pytest.mark.appium
def test_optional_step_does_not_wait_out_its_timeout(session_for):
    session = session_for("home")
    flow = load_flow("instagram_reel")
    optional = next(s for s in flow.steps if s.optional)
    steps = tuple(dataclasses.replace(s, timeout=20) if s is optional else s for s in flow.steps)
    started = time.monotonic()
    run_flow(session.driver, dataclasses.replace(flow, steps=steps), caption="c", on_publishing=lambda: None)
    assert time.monotonic() - started < 10


@pytest.mark.appium
def test_element_that_never_shows_is_element_not_found(session_for):
    session = session_for("home", screenOverrides={"reel_editor": "loading"})
    publishing = Recorder(session)
    started = time.monotonic()
    with pytest.raises(PostError) as info:
        run_flow(session.driver, shortened(load_flow("instagram_reel"), 1.5), caption="c",
                 on_publishing=publishing)
    elapsed = time.monotonic() - started
    assert info.value.error_type == "element_not_found"
    assert info.value.category == INFRASTRUCTURE
    assert "next_from_editor" in str(info.value)
    assert 1.5 <= elapsed < 6
    assert publishing.calls == []


@pytest.mark.appium
def test_no_confirmation_after_share_is_outcome_unknown(session_for):
    session = session_for("home", screenOverrides={"shared": "loading"})
    publishing = Recorder(session)
    with pytest.raises(PostError) as info:
        run_flow(session.driver, shortened(load_flow("instagram_reel"), 1.0), caption="c",
                 on_publishing=publishing)
    assert info.value.error_type == OUTCOME_UNKNOWN
    assert not classify(info.value).retryable
    assert len(publishing.calls) == 1
