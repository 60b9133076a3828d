// The console in headless Chromium: sign in with a token, ask for access, approve it as the
// manager (in bulk) and as the owner, see the grant and its end on the person's page, cancel
// a run as an admin, find the decision in the audit search, see a reconciliation's findings and
// its page, revoke a leaver's access in an access review, and check every page with axe-core
// (WCAG 2.2 A and AA). Pages load with their Content-Security-Policy enforced.
//
// Started by crates/tenure/tests/console_browser.rs, which runs a server and passes:
//   TENURE_URL                  the server, http://127.0.0.1:PORT
//   TENURE_EMPLOYEE_TOKEN       acts as eve (request, read), who reports to mia
//   TENURE_MANAGER_TOKEN        acts as mia (approve, read)
//   TENURE_OWNER_TOKEN          acts as olga (approve, read), owner of directory:reports
//   TENURE_ADMIN_TOKEN          admin, acting as no person
// and has opened the access review "Chat access" (chat:general, reviewed by each person's
// manager), with sam's leave announced for next month.
//   TENURE_OIDC_ISSUER          the OpenID provider the console signs in through
//                               (tests/browser/oidc_provider.mjs): any login name works there,
//                               and mia@example.com is in its group tenure-admins
//   TENURE_SCREENSHOTS          optional: a folder to save screenshots of the main pages in

import assert from 'node:assert/strict';
import { launch, newPage, checkA11y, screenshot, test, after, run } from './lib.mjs';

const base = process.env.TENURE_URL;
const tokens = {
  employee: process.env.TENURE_EMPLOYEE_TOKEN,
  manager: process.env.TENURE_MANAGER_TOKEN,
  owner: process.env.TENURE_OWNER_TOKEN,
  admin: process.env.TENURE_ADMIN_TOKEN,
};
const issuer = process.env.TENURE_OIDC_ISSUER;
for (const [k, v] of Object.entries({ TENURE_URL: base, TENURE_OIDC_ISSUER: issuer, ...tokens })) {
  assert.ok(v, `${k} is not set`);
}

const browser = await launch();
after(() => browser.close());

const url = (path) => new URL(path, base).href;
const errors = [];

// A signed-in page for `who`, signed in through the form with the keyboard.
async function signIn(who, options = {}) {
  const page = await newPage(browser, options);
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(`${page.url()}: ${m.text()}`);
  });
  page.on('pageerror', (e) => errors.push(`${page.url()}: ${e.message}`));
  await page.goto(url('/console'));
  assert.match(page.url(), /\/console\/sign-in\?next=%2Fconsole$/);
  await page.getByLabel('API token').fill(tokens[who]);
  await page.keyboard.press('Enter');
  await page.waitForURL(url('/console'));
  return page;
}

// Checks the page against WCAG 2.2 A/AA and that nothing the policy blocked broke it.
async function check(page, name) {
  await checkA11y(page, name);
  const styled = await page.evaluate(
    () => getComputedStyle(document.querySelector('header.top')).display,
  );
  assert.equal(styled, 'flex', `${name}: the stylesheet did not load`);
  assert.deepEqual(errors, [], `${name}: the browser reported errors`);
}

// Follows a link of the console's menu.
async function nav(page, name) {
  await page.getByRole('navigation', { name: 'Console' }).getByRole('link', { name }).click();
}

let requestPath;
let requestRun;

// The API, as the admin: to wait for the engine between what people do.
async function api(path) {
  const res = await fetch(url(path), { headers: { authorization: `Bearer ${tokens.admin}` } });
  assert.equal(res.status, 200, `${path}: ${await res.clone().text()}`);
  return res.json();
}

// Polls a run (a few ms apart, within a bound) until its grant waits for approval.
async function awaitingApproval(run) {
  for (let i = 0; i < 6000; i++) {
    const r = await api(`/api/v1/runs/${run}`);
    if (r.state === 'awaiting_approval') return;
    assert.ok(
      !['succeeded', 'failed', 'cancelled', 'compensated', 'denied'].includes(r.state),
      JSON.stringify(r),
    );
    await new Promise((done) => setTimeout(done, 5));
  }
  throw new Error(`run ${run} never reached its approval`);
}

// Long-polls a run until it ends.
async function finished(run) {
  for (;;) {
    const r = await api(`/api/v1/runs/${run}?wait_ms=10000`);
    if (['succeeded', 'failed', 'cancelled', 'compensated', 'denied'].includes(r.state)) return r;
  }
}

test('the sign-in page and a wrong token are accessible', async () => {
  const page = await newPage(browser);
  await page.goto(url('/console/sign-in'));
  await checkA11y(page, 'sign-in');
  await screenshot(page, 'sign-in');
  await page.getByLabel('API token').fill('tnr_wrong');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('alert').waitFor();
  assert.match(await page.getByRole('alert').innerText(), /unknown or revoked/);
  await checkA11y(page, 'sign-in refused');
  await page.context().close();
});

test('an employee finds an entitlement in the catalog and asks for it for two hours', async () => {
  const page = await signIn('employee');
  assert.match(await page.getByRole('heading', { level: 1 }).innerText(), /Home/);
  await check(page, 'home (employee)');
  await nav(page, 'Request access');
  await page.getByLabel('Name or id').fill('reports');
  await page.getByRole('button', { name: 'Search' }).click();
  await check(page, 'catalog');
  await page.getByRole('link', { name: /Ask for/ }).first().click();
  await page.getByLabel('Why you need it').fill('Monthly reporting for the board');
  // High risk: at most 8 hours by default, which the form offers first.
  assert.equal(await page.getByLabel('For how long').inputValue(), String(8 * 3600));
  await page.getByLabel('For how long').selectOption({ label: '2 hours' });
  await check(page, 'request form');
  await screenshot(page, 'request-access');
  await page.getByRole('button', { name: 'Send the request' }).click();
  await page.getByRole('status').waitFor();
  assert.match(await page.getByRole('status').innerText(), /Your request was sent/);
  requestPath = new URL(page.url()).pathname;
  assert.match(requestPath, /^\/console\/requests\//);
  requestRun = (await page.locator('dl.facts a[href^="/console/runs/"]').innerText()).trim();
  await check(page, 'request page');
  await page.context().close();
});

test('the manager approves it from the inbox, in bulk, with one comment', async () => {
  await awaitingApproval(requestRun);
  const page = await signIn('manager');
  await page.getByText('reports for eve').first().waitFor();
  await check(page, 'home (manager)');
  await screenshot(page, 'home-manager');
  await nav(page, 'Approvals');
  await check(page, 'approvals inbox');
  await screenshot(page, 'approvals-inbox');
  await page.getByRole('checkbox', { name: /directory:reports for eve/ }).check();
  await page.getByLabel('Comment').fill('Fine for the board reporting');
  await page.getByRole('button', { name: 'Approve selected' }).click();
  await page.getByRole('status').waitFor();
  assert.match(await page.getByRole('status').innerText(), /decision was recorded/);
  await nav(page, 'Delegations');
  await check(page, 'delegations');
  await page.context().close();
});

test('the manager revokes a leaver\'s access in an access review, with a reason', async () => {
  const page = await signIn('manager');
  assert.match(await page.locator('main').innerText(), /2 access review items wait for you/);
  await nav(page, 'Reviews');
  await check(page, 'access reviews');
  await page.getByRole('link', { name: 'Chat access' }).click();
  const items = page.getByRole('table', { name: 'Items of Chat access' });
  const sam = await items.locator('tbody tr', { hasText: 'sam' }).innerText();
  assert.match(sam, /revoke\s+90\s%/);
  assert.match(sam, /the person is leaving/);
  await check(page, 'access review');
  await screenshot(page, 'access-review');
  await page.getByRole('checkbox', { name: 'Select chat:general of sam' }).check();
  await page.getByLabel('Justification').fill('Leaves at the end of the month');
  await page.getByRole('button', { name: 'Revoke', exact: true }).click();
  await page.getByRole('status').waitFor();
  assert.match(await page.getByRole('status').innerText(), /decisions were recorded/);
  // Decided, it no longer waits; eve's does.
  assert.equal(await page.getByRole('checkbox', { name: /of sam$/ }).count(), 0);
  assert.equal(await page.getByRole('checkbox', { name: /of eve$/ }).count(), 1);
  await check(page, 'access review (decided)');
  await page.getByLabel('Show').selectOption('decided');
  await page.getByRole('button', { name: 'Show', exact: true }).click();
  await page.waitForURL(/state=decided/);
  assert.match(await items.locator('tbody').innerText(), /Leaves at the end of the month/);
  await page.context().close();
});

test('the owner approves it on its own page; the request shows both decisions', async () => {
  const page = await signIn('owner');
  await page.getByRole('link', { name: /reports for eve/ }).first().click();
  await check(page, 'approval page');
  await screenshot(page, 'approval');
  await page.getByLabel('Comment').fill('One day is fine');
  await page.getByRole('button', { name: 'Approve', exact: true }).click();
  await page.getByRole('status').waitFor();
  const decisions = await page.locator('ul.decisions li').allInnerTexts();
  assert.equal(decisions.length, 2, decisions.join('\n'));
  assert.match(decisions.join('\n'), /approve by mia/);
  assert.match(decisions.join('\n'), /approve by olga/);
  await page.context().close();
});

test('the grant appears on the person page with its end, in the viewer time zone', async () => {
  assert.equal((await finished(requestRun)).state, 'succeeded');
  const page = await signIn('employee', { timezoneId: 'Asia/Tokyo' });
  await page.goto(url('/console/people/eve'));
  const grants = page.getByRole('table', { name: 'Grants and why they are held' });
  const row = grants.locator('tr', { hasText: 'directory:reports' });
  const text = await row.innerText();
  assert.match(text, /granted/);
  assert.match(text, /request/);
  assert.doesNotMatch(text, /until revoked/);
  // The script shows times in the viewer's zone and keeps the UTC time as the title.
  const until = row.locator('time').last();
  const utc = await until.getAttribute('datetime');
  assert.equal(await until.getAttribute('title'), utc);
  assert.notEqual(await until.innerText(), utc);
  // The timeline: newest first, the grant's step above the request that asked for it.
  const timeline = page.getByRole('table', { name: /newest first/ });
  const lines = await timeline.locator('tbody tr').allInnerTexts();
  const grant = lines.findIndex((l) => /step\.grant directory:reports/.test(l));
  const asked = lines.findIndex((l) => /request\.created directory:reports/.test(l));
  assert.ok(grant >= 0 && grant < asked, lines.join('\n'));
  await check(page, 'person page');
  await screenshot(page, 'person');
  await page.goto(url(requestPath));
  assert.match(await page.locator('dl.facts').innerText(), /approved/);
  await page.context().close();
});

test('an admin cancels a run waiting for approval, and finds it all in the audit search', async () => {
  const employee = await signIn('employee');
  await employee.goto(url('/console/request?entitlement=directory%3Apayroll'));
  await employee.getByLabel('Why you need it').fill('Year-end payroll check');
  await employee.getByRole('button', { name: 'Send the request' }).click();
  await employee.getByRole('status').waitFor();
  const runLink = employee.locator('dl.facts a[href^="/console/runs/"]');
  const runPath = await runLink.getAttribute('href');
  await employee.context().close();
  await awaitingApproval(runPath.split('/').pop());

  const page = await signIn('admin');
  await nav(page, 'Runs');
  await check(page, 'runs');
  await screenshot(page, 'runs');
  await page.goto(url(runPath));
  await check(page, 'run page');
  await page.getByRole('button', { name: 'Cancel the run' }).click();
  await page.getByRole('status').waitFor();
  assert.match(await page.getByRole('status').innerText(), /being cancelled/);

  await nav(page, 'People');
  await page.getByLabel('Name or email').fill('Eve');
  await page.getByRole('button', { name: 'Search' }).click();
  await check(page, 'people');
  await screenshot(page, 'people');
  await nav(page, 'Tasks');
  await check(page, 'tasks');
  await nav(page, 'Dashboard');
  assert.match(await page.locator('main').innerText(), /Time to revoke/);
  await check(page, 'dashboard');
  await screenshot(page, 'dashboard');
  await nav(page, 'Systems');
  await check(page, 'systems');
  await screenshot(page, 'systems');
  await nav(page, 'Findings');
  assert.match(await page.locator('tbody').innerText(), /ghost/);
  await check(page, 'findings');
  await page.getByLabel('Situation').selectOption('stale');
  await page.getByRole('button', { name: 'Search' }).click();
  assert.match(await page.locator('main').innerText(), /No finding matches/);
  await check(page, 'findings (none)');
  await page.goBack();
  await page.locator('tbody a[href^="/console/reconciliations/"]').first().click();
  assert.match(await page.getByRole('heading', { level: 1 }).innerText(), /Reconciliation/);
  assert.match(await page.locator('dl.facts').innerText(), /completed/);
  await check(page, 'reconciliation page');

  await nav(page, 'Audit');
  await page.getByLabel('Person (id)').fill('eve');
  await page.getByLabel('Action').fill('approval.approve');
  await page.getByRole('button', { name: 'Search' }).click();
  const rows = page.locator('tbody tr');
  assert.equal(await rows.count(), 2, await page.locator('main').innerText());
  assert.match(await rows.first().innerText(), /mia/);
  await check(page, 'audit');
  await screenshot(page, 'audit');

  const bad = await page.goto(url('/console/people?status=retired'));
  assert.equal(bad.status(), 400);
  errors.splice(0); // the browser reports the 400 itself as a failed load
  assert.match(await page.getByRole('alert').innerText(), /status/);
  await check(page, 'error page');
  await page.context().close();
});

test('on a phone screen, pages fit the width and the menu wraps', async () => {
  const page = await signIn('admin', { viewport: { width: 390, height: 844 }, isMobile: true });
  for (const path of ['/console', '/console/people', '/console/runs', '/console/audit']) {
    await page.goto(url(path));
    const [scroll, width] = await page.evaluate(() => [
      document.documentElement.scrollWidth,
      window.innerWidth,
    ]);
    assert.ok(scroll <= width, `${path}: ${scroll}px wide on a ${width}px screen`);
  }
  await screenshot(page, 'phone-people');
  await page.context().close();
});

test('the keyboard reaches the skip link first, and it moves focus to the content', async () => {
  const page = await signIn('manager');
  await page.keyboard.press('Tab');
  const first = await page.evaluate(() => document.activeElement.textContent);
  assert.match(first, /Skip to the page/);
  await page.keyboard.press('Enter');
  assert.equal(new URL(page.url()).hash, '#main');
  await page.context().close();
});

// Signs in at the OpenID provider's own pages as `login`, starting from the console page
// `path`; returns the page once the browser is back at the console, and the callback URL the
// provider sent it to.
async function signInAtProvider(login, path = '/console') {
  const page = await newPage(browser);
  const callback = page.waitForRequest((r) => r.url().startsWith(url('/console/sign-in/oidc/callback')));
  callback.catch(() => {}); // awaited below, once the steps before it have had their say
  await throughProvider(page, login, path);
  const answer = (await callback).url();
  await page.waitForLoadState();
  return { page, callback: answer };
}

// From the console page `path`, follows "Sign in with Test IdP" and signs in there as `login`,
// consenting to what tenure asks.
async function throughProvider(page, login, path) {
  await page.goto(url(path));
  await page.getByRole('link', { name: 'Sign in with Test IdP' }).click();
  await page.waitForURL((u) => u.href.startsWith(issuer));
  await page.locator('input[name=login]').fill(login);
  await page.locator('input[name=password]').fill('any password');
  await page.getByRole('button', { name: 'Sign-in' }).click();
  await page.getByRole('button', { name: 'Continue' }).click();
}

// The API's record of the token named `name` (made for an OpenID Connect session).
async function tokenNamed(name) {
  const list = await api('/api/v1/tokens');
  const found = (list.items ?? list).filter((t) => t.name === name);
  assert.equal(found.length, 1, `tokens named ${name}: ${JSON.stringify(found)}`);
  return found[0];
}

test('an employee signs in through the identity provider; signing out revokes the session', async () => {
  const { page, callback } = await signInAtProvider('eve@example.com', '/console/approvals');
  await page.waitForURL(url('/console/approvals'));
  assert.match(await page.getByRole('heading', { level: 1 }).innerText(), /Approvals/);
  await check(page, 'approvals (signed in through the identity provider)');
  // `request` alone shows the catalog: nothing more is needed to ask for access.
  await page.goto(url('/console/request'));
  assert.match(await page.locator('main').innerText(), /Staff directory/);
  const cookies = await page.context().cookies(url('/console/sign-in/oidc/callback'));
  const session = cookies.find((c) => c.name === 'tenure_session');
  assert.ok(session, JSON.stringify(cookies));
  assert.equal(session.sameSite, 'Strict');
  assert.ok(session.httpOnly);
  assert.ok(!cookies.some((c) => c.name === 'tenure_oidc' && c.value), 'the sign-in cookie is cleared');

  const token = await tokenNamed('oidc:eve');
  assert.equal(token.person_id, 'eve');
  assert.deepEqual(token.scopes.split(' ').sort(), ['approve', 'request']);
  assert.equal(token.revoked_at ?? null, null);

  // The provider's answer works once: sent again, it is refused and opens nothing.
  const again = await newPage(browser);
  const replay = await again.goto(callback);
  assert.equal(replay.status(), 400);
  assert.match(await again.getByRole('alert').innerText(), /expired, was already used/);
  await again.context().close();

  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.waitForURL(url('/console/sign-in'));
  assert.ok((await tokenNamed('oidc:eve')).revoked_at, 'signing out revokes the session token');
  await page.context().close();
});

test('the roles claim adds scopes: a member of tenure-admins signs in as an admin', async () => {
  const { page } = await signInAtProvider('mia@example.com');
  await page.waitForURL(url('/console'));
  const token = await tokenNamed('oidc:mia');
  assert.ok(token.scopes.split(' ').includes('admin'), token.scopes);
  await page.context().close();
});

test('someone tenure does not know, who has left, or whose email is unverified is told why and not let in', async () => {
  for (const [login, why] of [
    ['nobody@example.com', /no one here has the email `nobody@example.com`/],
    ['unverified-eve@example.com', /not verified/],
    ['leo@example.com', /`leo` has left/],
  ]) {
    const { page } = await signInAtProvider(login);
    assert.match(await page.getByRole('alert').innerText(), why);
    errors.splice(0); // the browser reports the 401 itself as a failed load
    await checkA11y(page, `sign-in refused (${login})`);
    const cookies = await page.context().cookies(url('/console'));
    assert.ok(!cookies.some((c) => c.name === 'tenure_session'), JSON.stringify(cookies));
    await page.context().close();
  }
});

test('an answer with another state than the sign-in it claims to end is refused', async () => {
  const page = await newPage(browser);
  await page.goto(url('/console/sign-in'));
  await page.getByRole('link', { name: 'Sign in with Test IdP' }).click();
  await page.waitForURL((u) => u.href.startsWith(issuer));
  // This browser has a sign-in under way; an answer for it with a forged state is refused.
  const res = await page.goto(url('/console/sign-in/oidc/callback?code=any&state=forged'));
  assert.equal(res.status(), 400);
  assert.match(await page.getByRole('alert').innerText(), /does not belong to this sign-in/);
  errors.splice(0);
  const cookies = await page.context().cookies(url('/console'));
  assert.ok(!cookies.some((c) => c.name === 'tenure_session'), JSON.stringify(cookies));
  await page.context().close();
});

await run();
