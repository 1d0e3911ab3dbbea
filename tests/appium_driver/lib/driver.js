'use strict';
/**
 * A fake Android phone for postdeck's tests, loaded by a real Appium server.
 *
 * The phone's "app" is a folder of XML screens (the fake driver's app format, written the way a
 * UiAutomator2 page source looks: android.widget.* tags with resource-id, content-desc and text).
 * Tapping an element that has a `target` attribute shows the screen of that name, so the
 * Instagram reel flow can be walked end to end through the same WebDriver calls a real phone gets.
 *
 * Capabilities (all optional; each test picks its scenario with them):
 *   appium:startScreen      screen the app shows when it starts (default "home")
 *   appium:screenOverrides  {"shared": "action_blocked"}: the next time the app would show the
 *                           key screen it shows the value instead (each override is used once)
 *   appium:crashOn          resource-id, content-desc or text of an element whose tap makes
 *                           UiAutomator2 "crash": that command and every later one in the session
 *                           fail the way a dead instrumentation process makes them fail
 *   appium:crashTimes       how many sessions crash that way (counted per crashKey, per server)
 *   appium:crashKey         names the crash counter, so tests do not share it
 *   appium:app              folder of screens (default: ../app next to this file)
 *
 * Screen attributes: `target` (screen to show on tap), `appearsAfterMs` (the element cannot be
 * found until that long after its screen was shown, like a toast or a slow load).
 *
 * Execute methods: mobile: activateApp / terminateApp / queryAppState / hideKeyboard (as
 * UiAutomator2 has them), and `postdeck: events` / `postdeck: screen` for the tests to look at
 * what the phone saw.
 */
const path = require('node:path');
const fs = require('node:fs');
const {FakeDriver} = require('@appium/fake-driver');
const {FakeApp} = require('@appium/fake-driver/build/lib/fake-app');
const {errors} = require('appium/driver');

const DEFAULT_APP_DIR = path.resolve(__dirname, '..', 'app');
const DEFAULT_APP_PACKAGE = 'com.instagram.android';
const LAUNCHER_SCREEN = 'launcher';

// Crash counters live as long as the Appium server process, so a crash "once" survives the
// session being quit and recreated, which is exactly what the recovery under test does.
const crashCounts = new Map();

/** XPath string literal for any value (XPath 1.0 has no escapes, hence concat()). */
function xpathLiteral(value) {
  if (!value.includes('"')) {
    return `"${value}"`;
  }
  if (!value.includes("'")) {
    return `'${value}'`;
  }
  return `concat("${value.split('"').join(`", '"', "`)}")`;
}

/** The fake app, one XML document per screen. */
class ScreenApp extends FakeApp {
  constructor() {
    super();
    this.appDir = DEFAULT_APP_DIR;
    this.screenName = null;
    this.screenShownAt = 0;
  }

  /** Called by FakeDriver.createSession with caps.app; ours is a folder and may be absent. */
  async loadApp(appDir) {
    this.appDir = appDir ? path.resolve(appDir) : DEFAULT_APP_DIR;
    if (!fs.existsSync(path.join(this.appDir, `${LAUNCHER_SCREEN}.xml`))) {
      throw new Error(`${this.appDir} is not a postdeck fake app (no ${LAUNCHER_SCREEN}.xml)`);
    }
  }

  screenNames() {
    return fs
      .readdirSync(this.appDir)
      .filter((f) => f.endsWith('.xml'))
      .map((f) => f.slice(0, -4))
      .sort();
  }

  async show(name) {
    const file = path.join(this.appDir, `${name}.xml`);
    if (!fs.existsSync(file)) {
      throw new errors.InvalidArgumentError(
        `Screen '${name}' does not exist; known screens: ${this.screenNames().join(', ')}`,
      );
    }
    await FakeApp.prototype.loadApp.call(this, file);
    this.screenName = name;
    this.screenShownAt = Date.now();
  }

  /** Nodes that have "appeared" yet: a node with appearsAfterMs stays hidden until then. */
  visibleNodes(nodes) {
    const age = Date.now() - this.screenShownAt;
    return nodes.filter((node) => {
      const delay = node.getAttribute ? node.getAttribute('appearsAfterMs') : '';
      return !delay || age >= Number(delay);
    });
  }
}

function elementLabel(el) {
  const a = el.nodeAttrs;
  return a['resource-id'] || a['content-desc'] || a.text || el.tagName;
}

class PostdeckFakeDriver extends FakeDriver {
  static executeMethodMap = {
    ...FakeDriver.executeMethodMap,
    'mobile: activateApp': {command: 'activateApp', params: {required: ['appId'], optional: ['bundleId']}},
    'mobile: terminateApp': {
      command: 'terminateApp',
      params: {required: ['appId'], optional: ['bundleId', 'timeout']},
    },
    'mobile: queryAppState': {command: 'queryAppState', params: {required: ['appId'], optional: ['bundleId']}},
    'mobile: hideKeyboard': {command: 'hideKeyboard', params: {optional: ['keys']}},
    'postdeck: events': {command: 'getPostdeckEvents'},
    'postdeck: screen': {command: 'getPostdeckScreen'},
  };

  constructor(opts = {}, shouldValidateCaps = true) {
    super(opts, shouldValidateCaps);
    // FakeDriver declares its capabilities and commands as instance fields, so ours must be
    // assigned here (after super) to take their place; methods on the prototype would lose.
    this.desiredCapConstraints = {
      app: {isString: true},
      startScreen: {isString: true},
      screenOverrides: {isObject: true},
      crashOn: {isString: true},
      crashTimes: {isNumber: true},
      crashKey: {isString: true},
      appPackage: {isString: true},
    };
    this.appModel = new ScreenApp();
    this.events = [];
    this.overrides = {};
    this.appRunning = false;
    this.crashedWith = null;
    this.findElOrEls = this.findOnScreen;
    this.click = this.tap;
    this.setValue = this.typeText;
    this.getText = this.readText;
  }

  async createSession(...args) {
    const result = await super.createSession(...args);
    this.overrides = {...(this.caps.screenOverrides || {})};
    this.events = [];
    await this.navigate(this.caps.startScreen || 'home');
    this.appRunning = true;
    return result;
  }

  /** A crashed UiAutomator2 session fails every command until it is deleted. */
  async executeCommand(cmd, ...args) {
    if (this.crashedWith && cmd !== 'deleteSession') {
      throw new errors.UnknownError(this.crashedWith.replace('%CMD%', cmd));
    }
    return await super.executeCommand(cmd, ...args);
  }

  appPackage() {
    return this.caps.appPackage || DEFAULT_APP_PACKAGE;
  }

  async navigate(name) {
    let screen = name;
    if (Object.hasOwn(this.overrides, name)) {
      screen = this.overrides[name];
      delete this.overrides[name];
    }
    await this.appModel.show(screen);
    // Element ids belong to the screen they were found on, as on a phone whose view went away.
    this.elMap = {};
    this.focusedElId = null;
    this.events.push(`screen:${screen}`);
  }

  async findOnScreen(strategy, selector, mult, context) {
    const queries = {
      id: () => `//*[@resource-id=${xpathLiteral(selector)}]`,
      'accessibility id': () => `//*[@content-desc=${xpathLiteral(selector)}]`,
      xpath: () => selector,
      'class name': () => `//${selector}`,
    };
    if (!queries[strategy]) {
      throw new errors.InvalidSelectorError(`Locator strategy '${strategy}' is not supported by this fake phone`);
    }
    let raw;
    try {
      raw = this.appModel.xpathQuery(queries[strategy](), context);
    } catch (err) {
      throw new errors.InvalidSelectorError(`Invalid selector '${selector}': ${err.message}`);
    }
    const nodes = this.appModel.visibleNodes(Array.isArray(raw) ? raw : raw ? [raw] : []);
    if (mult) {
      return nodes.map((n) => this.wrapNewEl(n));
    }
    if (!nodes.length) {
      throw new errors.NoSuchElementError();
    }
    return this.wrapNewEl(nodes[0]);
  }

  async tap(elementId) {
    const el = this.getElement(elementId);
    if (!el.isVisible()) {
      throw new errors.InvalidElementStateError();
    }
    const label = elementLabel(el);
    this.maybeCrash(label, el);
    el.click();
    this.events.push(`tap:${label}`);
    if (el.nodeAttrs.target) {
      await this.navigate(el.nodeAttrs.target);
    }
  }

  /** UiAutomator2's "crash": the tap never reaches the phone and the session is dead. */
  maybeCrash(label, el) {
    const crashOn = this.caps.crashOn;
    if (!crashOn) {
      return;
    }
    const a = el.nodeAttrs;
    if (![label, a['resource-id'], a['content-desc'], a.text].includes(crashOn)) {
      return;
    }
    const key = this.caps.crashKey || crashOn;
    const done = crashCounts.get(key) || 0;
    if (done >= (this.caps.crashTimes ?? 1)) {
      return;
    }
    crashCounts.set(key, done + 1);
    this.events.push(`crash:${label}`);
    this.crashedWith =
      "'%CMD%' cannot be proxied to UiAutomator2 server because the instrumentation process " +
      'is not running (probably crashed). Check the server log and/or the logcat output for more details';
    throw new errors.UnknownError(this.crashedWith.replace('%CMD%', 'click'));
  }

  async typeText(keys, elementId) {
    const value = Array.isArray(keys) ? keys.join('') : String(keys);
    const el = this.getElement(elementId);
    if (!['android.widget.EditText', 'android.widget.AutoCompleteTextView', 'MockInputField'].includes(el.tagName)) {
      throw new errors.InvalidElementStateError(`${el.tagName} does not take text`);
    }
    el.setAttr('value', value);
    this.events.push(`type:${elementLabel(el)}:${value}`);
  }

  async readText(elementId) {
    const el = this.getElement(elementId);
    return el.getAttr('value') || el.nodeAttrs.text || '';
  }

  async activateApp(appId) {
    if (appId !== this.appPackage()) {
      throw new errors.UnknownError(`The application '${appId}' is not installed on the device`);
    }
    this.events.push(`activate:${appId}`);
    if (!this.appRunning) {
      this.appRunning = true;
      await this.navigate(this.caps.startScreen || 'home');
    }
  }

  async terminateApp(appId) {
    this.events.push(`terminate:${appId}`);
    const wasRunning = appId === this.appPackage() && this.appRunning;
    if (wasRunning) {
      this.appRunning = false;
      await this.navigate(LAUNCHER_SCREEN);
    }
    return wasRunning;
  }

  async queryAppState(appId) {
    // The values of ApplicationState: 1 not running, 4 running in foreground.
    return appId === this.appPackage() && this.appRunning ? 4 : 1;
  }

  async hideKeyboard() {
    this.events.push('hide_keyboard');
    return true;
  }

  async getPostdeckEvents() {
    return this.events;
  }

  async getPostdeckScreen() {
    return this.appModel.screenName;
  }
}

module.exports = {PostdeckFakeDriver, default: PostdeckFakeDriver};
