"""Posting flows as data, and the walker that plays them on a phone through Appium.

A flow file (engine/flows/<name>.json) lists the steps of one post: what to find on screen, how
long to wait for it, what to do with it. Instagram moves its buttons around often; updating a flow
is an edit to its JSON, never to this module. A flow also lists the error screens (suspended,
checkpoint, "Try Again Later", ...) and the error type each one means: the walker looks for them
whenever the element it waits for does not show up, so a job fails with the real reason instead
of a timeout.

Flow file format (keys not listed here are refused, so a typo cannot silently disable a rule):

    {"name": "...", "description": "...", "app_package": "com.instagram.android",
     "poll_interval": 0.5, "error_check_interval": 1.0, "default_timeout": 15,
     "steps": [{"name": "share", "action": "tap", "selectors": [{"id": "..."}, {"text": "Share"}],
                "timeout": 20, "publishing": true}, ...],
     "error_screens": [{"error_type": "suspended", "message": "...", "selectors": [...]}, ...]}

Actions: `launch` (force-stop and start `app`, then wait for `selectors` if any), `tap`, `type`
(types `text`, where `{caption}` is the job's caption), `wait`. Step options: `timeout` (s),
`optional` (tap it if it shows up before the next step's element does, else skip), `publishing`
(exactly one tap step: the one that makes the post public), `index` (which match to use when
several elements match, 0 = first), `hide_keyboard` (type steps). Selector kinds, each a one-key
object, tried in order: `id` (resource-id), `accessibility_id` (content-desc), `text`,
`text_contains`, `xpath`.
"""
from __future__ import annotations

import json
import logging
import string
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, NoReturn

from appium.webdriver.common.appiumby import AppiumBy
from selenium.common.exceptions import (
    ElementNotInteractableException,
    InvalidElementStateException,
    InvalidSelectorException,
    StaleElementReferenceException,
    WebDriverException,
)

from engine.errors import CATEGORIES, INFRASTRUCTURE, OUTCOME_UNKNOWN, UNKNOWN, PostError, category_of
from engine.evidence import annotate_step

log = logging.getLogger("postdeck.flow")

FLOWS_DIR = Path(__file__).resolve().parent.parent / "flows"
SELECTOR_KINDS = ("id", "accessibility_id", "text", "text_contains", "xpath")
ACTIONS = ("launch", "tap", "type", "wait")

_FLOW_KEYS = {"name", "description", "app_package", "poll_interval", "error_check_interval",
              "default_timeout", "steps", "error_screens"}
_STEP_KEYS = {"name", "description", "action", "selectors", "timeout", "optional", "publishing",
              "text", "index", "app", "hide_keyboard"}
_ERROR_SCREEN_KEYS = {"error_type", "category", "message", "description", "selectors"}

# Errors that mean "the element changed under us": the tap did not happen, so trying again
# within the step's timeout is safe, even for the publishing tap.
_TRANSIENT = (StaleElementReferenceException, InvalidElementStateException,
              ElementNotInteractableException)


class FlowError(ValueError):
    """A flow file that cannot be used. The message names the file and the key that is wrong."""


def xpath_literal(value: str) -> str:
    """`value` as an XPath 1.0 string literal; XPath has no escapes, so mixed quotes need concat()."""
    if '"' not in value:
        return f'"{value}"'
    if "'" not in value:
        return f"'{value}'"
    return "concat(" + ", '\"', ".join(f'"{part}"' for part in value.split('"')) + ")"


@dataclass(frozen=True)
class Selector:
    kind: str
    value: str

    def xpath(self) -> str:
        """The same selector as an XPath expression (for one query that covers many selectors)."""
        if self.kind == "id":
            return f"//*[@resource-id={xpath_literal(self.value)}]"
        if self.kind == "accessibility_id":
            return f"//*[@content-desc={xpath_literal(self.value)}]"
        return self.locator()[1]

    def locator(self) -> tuple[str, str]:
        """The (by, value) pair for WebDriver's find_elements."""
        if self.kind == "id":
            return AppiumBy.ID, self.value
        if self.kind == "accessibility_id":
            return AppiumBy.ACCESSIBILITY_ID, self.value
        if self.kind == "text":
            return AppiumBy.XPATH, f"//*[@text={xpath_literal(self.value)}]"
        if self.kind == "text_contains":
            return AppiumBy.XPATH, f"//*[contains(@text, {xpath_literal(self.value)})]"
        return AppiumBy.XPATH, self.value

    def __str__(self) -> str:
        return f"{self.kind}={self.value!r}"


@dataclass(frozen=True)
class Step:
    name: str
    action: str
    selectors: tuple[Selector, ...]
    timeout: float
    optional: bool = False
    publishing: bool = False
    text: str | None = None
    index: int = 0
    app: str | None = None
    hide_keyboard: bool = False


@dataclass(frozen=True)
class ErrorScreen:
    error_type: str
    category: str
    message: str
    selectors: tuple[Selector, ...]


@dataclass(frozen=True)
class Flow:
    name: str
    source: str
    app_package: str
    poll_interval: float
    error_check_interval: float
    steps: tuple[Step, ...]
    error_screens: tuple[ErrorScreen, ...]

    @property
    def error_xpath(self) -> str:
        """One XPath union matching any error screen's selectors."""
        return " | ".join(sel.xpath() for screen in self.error_screens for sel in screen.selectors)


# --------------------------------------------------------------------------- loading


def flow_path(name_or_path: str | Path) -> Path:
    """A bundled flow's name (`instagram_reel`) or the path of a flow file."""
    text = str(name_or_path)
    if text.endswith(".json") or "/" in text or "\\" in text:
        return Path(name_or_path)
    return FLOWS_DIR / f"{text}.json"


def load_flow(name_or_path: str | Path) -> Flow:
    """Read and validate a flow; a FlowError names the file and the offending key."""
    path = flow_path(name_or_path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        known = ", ".join(sorted(p.stem for p in FLOWS_DIR.glob("*.json"))) or "none"
        raise FlowError(f"{path}: no such flow file (bundled flows: {known})") from None
    except json.JSONDecodeError as exc:
        raise FlowError(f"{path}: not valid JSON: line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    return parse_flow(raw, source=str(path))


def parse_flow(raw: Any, source: str = "<flow>") -> Flow:
    """Validate a flow already decoded from JSON."""
    v = _Validator(source)
    v.object(raw, "", _FLOW_KEYS, required=("name", "app_package", "steps"))
    name = v.text(raw["name"], "name")
    app_package = v.text(raw["app_package"], "app_package")
    poll = v.positive(raw.get("poll_interval", 0.5), "poll_interval")
    error_every = v.positive(raw.get("error_check_interval", 1.0), "error_check_interval")
    default_timeout = v.positive(raw.get("default_timeout", 15), "default_timeout")

    steps_raw = raw["steps"]
    if not isinstance(steps_raw, list) or not steps_raw:
        v.fail("steps", "must be a non-empty list of steps")
    steps = tuple(_parse_step(v, s, f"steps[{i}]", default_timeout) for i, s in enumerate(steps_raw))
    seen: set[str] = set()
    for i, step in enumerate(steps):
        if step.name in seen:
            v.fail(f"steps[{i}].name", f"duplicate step name {step.name!r}")
        seen.add(step.name)
    publishing = [i for i, s in enumerate(steps) if s.publishing]
    if len(publishing) != 1:
        v.fail("steps", "exactly one step must have \"publishing\": true (the tap that makes the post "
                        f"public); found {len(publishing)}")

    screens_raw = raw.get("error_screens", [])
    if not isinstance(screens_raw, list):
        v.fail("error_screens", "must be a list")
    screens = tuple(_parse_error_screen(v, s, f"error_screens[{i}]") for i, s in enumerate(screens_raw))
    return Flow(name, source, app_package, poll, error_every, steps, screens)


def _parse_step(v: "_Validator", raw: Any, where: str, default_timeout: float) -> Step:
    v.object(raw, _labelled(raw, where, "name"), _STEP_KEYS, required=("name", "action"))
    name = v.text(raw["name"], f"{where}.name")
    where = f"{where} ({name})"
    action = raw["action"]
    if action not in ACTIONS:
        v.fail(f"{where}.action", f"unknown action {action!r} (expected one of {', '.join(ACTIONS)})")
    selectors = v.selectors(raw.get("selectors", []), f"{where}.selectors", allow_empty=action == "launch")
    timeout = v.positive(raw.get("timeout", default_timeout), f"{where}.timeout")
    optional = v.boolean(raw.get("optional", False), f"{where}.optional")
    publishing = v.boolean(raw.get("publishing", False), f"{where}.publishing")
    if publishing and (action != "tap" or optional):
        v.fail(f"{where}.publishing", "only a tap that is not optional can be the publishing step")
    text = raw.get("text")
    if action == "type":
        text = v.text(text, f"{where}.text")
        fields = {f for _, f, _, _ in string.Formatter().parse(text) if f is not None}
        if fields - {"caption"}:
            v.fail(f"{where}.text", f"unknown placeholder(s) {sorted(fields - {'caption'})}; only {{caption}} exists")
    elif text is not None:
        v.fail(f"{where}.text", "only type steps take text")
    index = raw.get("index", 0)
    if not isinstance(index, int) or isinstance(index, bool) or index < 0:
        v.fail(f"{where}.index", f"must be a whole number >= 0, not {index!r}")
    app = raw.get("app")
    if app is not None and action != "launch":
        v.fail(f"{where}.app", "only launch steps take app")
    if app is not None:
        app = v.text(app, f"{where}.app")
    hide = v.boolean(raw.get("hide_keyboard", False), f"{where}.hide_keyboard")
    if hide and action != "type":
        v.fail(f"{where}.hide_keyboard", "only type steps can hide the keyboard")
    return Step(name, action, selectors, timeout, optional, publishing, text, index, app, hide)


def _parse_error_screen(v: "_Validator", raw: Any, where: str) -> ErrorScreen:
    v.object(raw, _labelled(raw, where, "error_type"), _ERROR_SCREEN_KEYS, required=("error_type", "selectors"))
    error_type = v.text(raw["error_type"], f"{where}.error_type")
    where = f"{where} ({error_type})"
    category = raw.get("category")
    if category is None:
        category = category_of(error_type)
        if category == UNKNOWN:
            v.fail(f"{where}.error_type", f"{error_type!r} is not an error type engine/errors.py knows; "
                                          "fix the spelling or give a \"category\"")
    elif category not in CATEGORIES:
        v.fail(f"{where}.category", f"unknown category {category!r} (expected one of {', '.join(CATEGORIES)})")
    message = raw.get("message", f"the app shows the {error_type} screen")
    message = v.text(message, f"{where}.message")
    selectors = v.selectors(raw["selectors"], f"{where}.selectors", allow_empty=False)
    return ErrorScreen(error_type, category, message, selectors)


def _labelled(raw: Any, where: str, key: str) -> str:
    """`steps[3] (share)`: the position and, when it has one, the name, so errors are easy to find."""
    if isinstance(raw, dict) and isinstance(raw.get(key), str) and raw[key].strip():
        return f"{where} ({raw[key]})"
    return where


class _Validator:
    """Raises FlowError("<file>: <key path>: <problem>")."""

    def __init__(self, source: str):
        self.source = source

    def fail(self, where: str, problem: str) -> NoReturn:
        raise FlowError(f"{self.source}: {where or 'top level'}: {problem}")

    def object(self, raw: Any, where: str, allowed: set[str], required: tuple[str, ...]) -> None:
        if not isinstance(raw, dict):
            self.fail(where, f"must be a JSON object, not {type(raw).__name__}")
        for key in raw:
            if key not in allowed:
                self.fail(f"{where}.{key}".lstrip("."), f"unknown key (allowed: {', '.join(sorted(allowed))})")
        for key in required:
            if key not in raw:
                self.fail(f"{where}.{key}".lstrip("."), "missing")

    def text(self, value: Any, where: str) -> str:
        if not isinstance(value, str) or not value.strip():
            self.fail(where, f"must be a non-empty string, not {value!r}")
        return value

    def positive(self, value: Any, where: str) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            self.fail(where, f"must be a number > 0, not {value!r}")
        return float(value)

    def boolean(self, value: Any, where: str) -> bool:
        if not isinstance(value, bool):
            self.fail(where, f"must be true or false, not {value!r}")
        return value

    def selectors(self, raw: Any, where: str, allow_empty: bool) -> tuple[Selector, ...]:
        if not isinstance(raw, list) or (not raw and not allow_empty):
            self.fail(where, "must be a non-empty list of selectors like {\"id\": \"...\"}")
        result = []
        for i, item in enumerate(raw):
            if not isinstance(item, dict) or len(item) != 1:
                self.fail(f"{where}[{i}]", f"must be an object with exactly one key, one of {', '.join(SELECTOR_KINDS)}")
            (kind, value), = item.items()
            if kind not in SELECTOR_KINDS:
                self.fail(f"{where}[{i}].{kind}", f"unknown selector kind (expected one of {', '.join(SELECTOR_KINDS)})")
            result.append(Selector(kind, self.text(value, f"{where}[{i}].{kind}")))
        return tuple(result)


# --------------------------------------------------------------------------- walking


def run_flow(driver: Any, flow: Flow, *, caption: str, on_publishing: Callable[[], None],
             clock: Callable[[], float] = time.monotonic,
             sleep: Callable[[float], None] = time.sleep) -> None:
    """Walk `flow` on the phone behind `driver` (an Appium WebDriver).

    `on_publishing()` is called right before the publishing tap; if it raises, the tap is not
    made and its exception goes up unchanged. Failures are PostErrors: the error screen's type
    when one is showing, else `element_not_found`; after the publishing tap a step that never
    completes is `outcome_unknown` (the post may be public). Driver errors other than "element
    not there yet" (a crashed UiAutomator2, a dead server) go up as they are, for the session
    layer to handle.
    """
    walker = _Walker(driver, flow, caption, on_publishing, clock, sleep)
    walker.run()


class _Walker:
    def __init__(self, driver: Any, flow: Flow, caption: str, on_publishing: Callable[[], None],
                 clock: Callable[[], float], sleep: Callable[[float], None]):
        self.driver = driver
        self.flow = flow
        self.caption = caption
        self.on_publishing = on_publishing
        self.clock = clock
        self.sleep = sleep
        self.published = False

    def run(self) -> None:
        # Waiting is done here, by polling, so each step has its own timeout; an implicit wait
        # on the driver would make every miss (and every error-screen probe) block.
        self.driver.implicitly_wait(0)
        steps = self.flow.steps
        for i, step in enumerate(steps):
            started = self.clock()
            next_step = steps[i + 1] if i + 1 < len(steps) else None
            try:
                done = self.play(step, next_step)
            except BaseException as exc:
                # Which step failed travels with the error (for the attempt's evidence); the
                # exception itself goes up unchanged.
                annotate_step(exc, step.name)
                raise
            log.info("step %s %s in %.1fs", step.name, "done" if done else "skipped", self.clock() - started)

    def play(self, step: Step, next_step: Step | None) -> bool:
        """Play one step; False when an optional step was not there."""
        if step.action == "launch":
            app = step.app or self.flow.app_package
            self.driver.terminate_app(app)
            self.driver.activate_app(app)
            if not step.selectors:
                return True
        deadline = self.clock() + step.timeout
        next_error_check = self.clock()
        while True:
            element = self.find(step.selectors, step.index)
            if element is not None:
                try:
                    self.act(step, element)
                    return True
                except _TRANSIENT as exc:
                    # The screen changed between find and act; the action did not happen.
                    log.debug("step %s: %s, looking again", step.name, type(exc).__name__)
            elif step.optional and next_step is not None and next_step.selectors \
                    and self.find(next_step.selectors, next_step.index) is not None:
                return False
            now = self.clock()
            if now >= next_error_check or now >= deadline:
                self.check_error_screens()
                next_error_check = now + self.flow.error_check_interval
            if now >= deadline:
                break
            self.sleep(min(self.flow.poll_interval, max(0.0, deadline - now)))
        if step.optional:
            return False
        raise self.not_found(step)

    def find(self, selectors: tuple[Selector, ...], index: int) -> Any:
        for selector in selectors:
            try:
                found = self.driver.find_elements(*selector.locator())
            except InvalidSelectorException as exc:
                raise FlowError(f"{self.flow.source}: the phone rejects selector {selector}: {exc.msg}") from None
            if len(found) > index:
                return found[index]
        return None

    def act(self, step: Step, element: Any) -> None:
        if step.action == "tap":
            if step.publishing and not self.published:
                # The caller records that the post is about to go public; if it cannot (its
                # claim was lost), the exception stops us before the tap.
                self.on_publishing()
                self.published = True
            element.click()
        elif step.action == "type":
            element.send_keys(step.text.format(caption=self.caption))
            if step.hide_keyboard:
                try:
                    self.driver.hide_keyboard()
                except WebDriverException:
                    pass  # no keyboard was showing: nothing to hide
        # `wait` and `launch` only needed the element to be there.

    def check_error_screens(self) -> None:
        if not self.flow.error_screens:
            return
        # One query for all error screens: on a real phone each find is a round trip through
        # UiAutomator2, and this runs every second while a step waits. Only when something
        # matches do we ask which screen it was.
        try:
            if not self.driver.find_elements(AppiumBy.XPATH, self.flow.error_xpath):
                return
        except InvalidSelectorException as exc:
            raise FlowError(f"{self.flow.source}: the phone rejects an error_screens selector: {exc.msg}") from None
        for screen in self.flow.error_screens:
            for selector in screen.selectors:
                if self.find((selector,), 0) is not None:
                    raise PostError(f"{screen.message} (flow {self.flow.name}: matched {selector})",
                                    error_type=screen.error_type, category=screen.category)

    def not_found(self, step: Step) -> PostError:
        wanted = ", ".join(str(s) for s in step.selectors)
        if self.published:
            return PostError(f"flow {self.flow.name}: step {step.name!r} did not complete within "
                             f"{step.timeout:g}s after the publishing tap ({wanted}); the post may be "
                             "public", error_type=OUTCOME_UNKNOWN, category=UNKNOWN)
        return PostError(f"flow {self.flow.name}: step {step.name!r}: element not found within "
                         f"{step.timeout:g}s (tried {wanted})",
                         error_type="element_not_found", category=INFRASTRUCTURE)
