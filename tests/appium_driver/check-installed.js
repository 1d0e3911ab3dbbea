#!/usr/bin/env node
'use strict';
/**
 * `npm run check-drivers`: after `npm ci`, make sure the repo's Appium sees the drivers postdeck
 * needs, the way AppiumServer will run it (APPIUM_HOME = the repo root), and that the test driver
 * loads. Exits non-zero with a message naming what is missing.
 */
const path = require('node:path');
const {execFileSync} = require('node:child_process');

const root = path.resolve(__dirname, '..', '..');
const appium = path.join(root, 'node_modules', '.bin', 'appium');
const wanted = {uiautomator2: 'UiAutomator2', 'postdeck-fake': 'PostdeckFake'};

function fail(message) {
  console.error(`check-drivers: ${message}`);
  process.exit(1);
}

let listing;
try {
  const out = execFileSync(appium, ['driver', 'list', '--installed', '--json'], {
    cwd: root,
    env: {...process.env, APPIUM_HOME: root},
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  listing = JSON.parse(out.toString());
} catch (err) {
  fail(`could not list Appium's drivers (${err.message}); run \`npm ci\` in ${root}`);
}

for (const [name, automationName] of Object.entries(wanted)) {
  const driver = listing[name];
  if (!driver || !driver.installed) {
    fail(`driver '${name}' is not installed in APPIUM_HOME=${root}; run \`npm ci\` there`);
  }
  if (driver.automationName !== automationName) {
    fail(`driver '${name}' has automationName ${driver.automationName}, expected ${automationName}`);
  }
}

const {PostdeckFakeDriver} = require(path.join(listing['postdeck-fake'].installPath, 'lib', 'driver.js'));
if (typeof PostdeckFakeDriver !== 'function') {
  fail('tests/appium_driver does not export PostdeckFakeDriver');
}
console.log(
  `check-drivers: ok (${Object.keys(wanted)
    .map((n) => `${n}@${listing[n].version}`)
    .join(', ')}; APPIUM_HOME=${root})`,
);
