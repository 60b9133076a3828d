// Helpers for the headless browser tests of the console pages.
//
// The browser is the system Chromium (Debian package `chromium`), driven
// through playwright-core; no browser is downloaded. Accessibility checks use
// axe-core against WCAG 2.0, 2.1 and 2.2 levels A and AA.

import { mkdir, readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { chromium } from 'playwright-core';

const require = createRequire(import.meta.url);

export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

// The test machines have no outside network. Without the background
// networking flags Chromium keeps trying (and failing) to reach its services.
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export const WCAG_TAGS = ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa'];

// Starts Chromium with a fresh temporary profile. Open pages with newPage(),
// which gives each page its own browser context (cookies, storage, cache).
export async function launch() {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
  });
}

// Opens a page in a new context (its own cookies). The page's
// Content-Security-Policy is enforced, as a user's browser would: a script or
// style the policy blocks shows up as a broken page. checkA11y works either way.
export async function newPage(browser, options = {}) {
  const context = await browser.newContext({
    bypassCSP: false,
    viewport: { width: 1280, height: 800 },
    locale: 'en-GB',
    timezoneId: 'UTC',
    reducedMotion: 'reduce',
    ...options,
  });
  return context.newPage();
}

let axeSource;

// Evaluating the source through the automation protocol, rather than adding
// a <script> element, also works when the page's policy is enforced.
async function injectAxe(page) {
  if (await page.evaluate(() => typeof window.axe === 'object')) return;
  axeSource ??= await readFile(require.resolve('axe-core/axe.min.js'), 'utf8');
  await page.evaluate(axeSource);
}

// Runs axe-core on the page with the WCAG A/AA rules and throws an Error
// listing every violation. `options.disableRules` turns off named rules.
export async function checkA11y(page, name, options = {}) {
  await injectAxe(page);
  const axeOptions = {
    runOnly: { type: 'tag', values: WCAG_TAGS },
    resultTypes: ['violations'],
    rules: Object.fromEntries((options.disableRules ?? []).map((id) => [id, { enabled: false }])),
  };
  const violations = await page.evaluate(
    async (opts) => (await window.axe.run(document, opts)).violations,
    axeOptions,
  );
  if (violations.length === 0) return;

  const lines = violations.map((v) => {
    const targets = v.nodes.slice(0, 3).map((n) => n.target.join(' '));
    const more = v.nodes.length > 3 ? ` (+${v.nodes.length - 3} more)` : '';
    return `  - ${v.id} [${v.impact}]: ${v.help}\n      at ${targets.join(', ')}${more}`;
  });
  throw new Error(
    `${name}: ${violations.length} accessibility violation(s) at ${page.url()}\n${lines.join('\n')}`,
  );
}

// Saves a full-page PNG into $TENURE_SCREENSHOTS when it is set; does nothing
// otherwise. Returns the path written, or null.
export async function screenshot(page, file) {
  const dir = process.env.TENURE_SCREENSHOTS;
  if (!dir) return null;
  await mkdir(dir, { recursive: true });
  const target = path.join(dir, file.endsWith('.png') ? file : `${file}.png`);
  await page.screenshot({ path: target, fullPage: true });
  return target;
}

// A minimal sequential test runner with TAP-like output.
const tests = [];
const teardowns = [];

export function test(name, fn) {
  tests.push({ name, fn });
}

// Registers a function to run once after all tests, e.g. closing the browser.
export function after(fn) {
  teardowns.push(fn);
}

export async function run() {
  let failed = 0;
  console.log(`1..${tests.length}`);
  for (const { name, fn } of tests) {
    try {
      await fn();
      console.log(`ok - ${name}`);
    } catch (err) {
      failed += 1;
      console.log(`not ok - ${name}`);
      console.log(String(err?.stack ?? err).replace(/^/gm, '    '));
    }
  }
  let teardownFailed = false;
  for (const fn of teardowns) {
    try {
      await fn();
    } catch (err) {
      teardownFailed = true;
      console.log(`# teardown failed: ${err?.stack ?? err}`);
    }
  }
  console.log(`${tests.length - failed} passed, ${failed} failed`);
  process.exit(failed > 0 || teardownFailed ? 1 : 0);
}
