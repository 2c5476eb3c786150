import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, expect, test } from 'vitest';
import {
  PageWatch,
  demoPerson,
  expectHeading,
  expectPath,
  launchBrowser,
  screenshot,
  signInPatient,
  startService,
  stopAndCheck,
  type RunningService,
} from './support';

let service: RunningService | undefined;
let browser: Browser | undefined;
const watch = new PageWatch();

const AMARA = demoPerson('amara@demo.confidant.test');
const BEN = demoPerson('ben@demo.confidant.test');

beforeAll(async () => {
  [service, browser] = await Promise.all([startService(), launchBrowser()]);
});

afterEach(() => watch.assertClean());

afterAll(async () => {
  await browser?.close();
  await stopAndCheck(service);
});

interface Answer {
  status: number;
  text: string;
}

/** A request made by the page itself, with its cookie and (for POST) its CSRF token. */
function fetchIn(page: Page, method: 'GET' | 'POST', url: string, body?: object): Promise<Answer> {
  return page.evaluate(
    async ({ method, url, body }) => {
      const headers: Record<string, string> = { accept: 'application/json' };
      const init: RequestInit = { method, headers, credentials: 'same-origin', cache: 'no-store' };
      if (method === 'POST') {
        const session = (await (await fetch('/api/session', { cache: 'no-store' })).json()) as { csrfToken?: string };
        headers['content-type'] = 'application/json';
        headers['x-csrf-token'] = session.csrfToken ?? 'none';
        init.body = JSON.stringify(body ?? {});
      }
      const res = await fetch(url, init);
      return { status: res.status, text: await res.text() };
    },
    { method, url, body },
  );
}

function namesOnProfile(page: Page) {
  return page.locator('.summary-list').innerText();
}

test('two patients signed in at the same time each see only their own details', async () => {
  const contexts: BrowserContext[] = [];
  try {
    const amaraContext = await watch.context(browser!, service!.baseUrl);
    const benContext = await watch.context(browser!, service!.baseUrl);
    contexts.push(amaraContext, benContext);
    const amara = await amaraContext.newPage();
    const ben = await benContext.newPage();

    // Both sign in concurrently: two live sessions on the same server.
    await Promise.all([signInPatient(amara, AMARA.email), signInPatient(ben, BEN.email)]);
    await Promise.all([expectHeading(amara, 'Hello, Amara'), expectHeading(ben, 'Hello, Ben')]);

    await Promise.all([amara.goto('/patient/profile'), ben.goto('/patient/profile')]);
    await Promise.all([expectHeading(amara, 'Your profile'), expectHeading(ben, 'Your profile')]);
    await amara.getByText(`${AMARA.givenName} ${AMARA.familyName}`, { exact: true }).waitFor();
    await ben.getByText(`${BEN.givenName} ${BEN.familyName}`, { exact: true }).waitFor();
    const amaraSees = await amara.locator('main').innerText();
    const benSees = await ben.locator('main').innerText();
    expect(amaraSees).toContain(AMARA.email);
    expect(amaraSees).not.toContain(BEN.familyName!);
    expect(amaraSees).not.toContain(BEN.email);
    expect(benSees).toContain(BEN.email);
    expect(benSees).not.toContain(AMARA.familyName!);
    expect(benSees).not.toContain(AMARA.email);
    expect(await namesOnProfile(ben)).toContain('Ben Walsh');
    await screenshot(ben, 'patient-profile');

    // Ben's browser asking the API directly gets Ben, and nothing of Amara.
    const profile = await fetchIn(ben, 'GET', '/api/profile');
    expect(profile.status).toBe(200);
    const data = JSON.parse(profile.text) as Record<string, unknown>;
    expect(data).toMatchObject({ givenName: 'Ben', familyName: 'Walsh', email: BEN.email });
    for (const foreign of [AMARA.givenName!, AMARA.familyName!, AMARA.email, AMARA.nhsNumber!]) {
      expect(profile.text).not.toContain(foreign);
    }

    // The DPO's page and API are not Ben's: the page sends him home, the API says "not found".
    await ben.goto('/dpo');
    await expectPath(ben, '/patient');
    await expectHeading(ben, 'Hello, Ben');
    expect(await ben.getByRole('heading', { name: 'Audit trail' }).count()).toBe(0);
    const getSearch = await fetchIn(ben, 'GET', '/api/audit/events/search');
    expect(getSearch.status).toBe(404);
    const postSearch = await fetchIn(ben, 'POST', '/api/audit/events/search', { limit: 50 });
    expect(postSearch.status).toBe(404);
    expect(JSON.parse(postSearch.text)).toMatchObject({ error: { code: 'not_found' } });
    expect(postSearch.text).not.toContain('auth.sign_in');
    const verify = await fetchIn(ben, 'POST', '/api/audit/verify', {});
    expect(verify.status).toBe(404);

    // Ben's activity changed nothing for Amara: she is still signed in as herself.
    await amara.reload();
    await amara.getByText(`${AMARA.givenName} ${AMARA.familyName}`, { exact: true }).waitFor();
    expect(await namesOnProfile(amara)).not.toContain('Walsh');
    const amaraProfile = await fetchIn(amara, 'GET', '/api/profile');
    expect(JSON.parse(amaraProfile.text)).toMatchObject({ givenName: 'Amara', email: AMARA.email });

    // Amara's security page, with the authenticator QR code (a data: image), renders under the CSP.
    await amara.getByRole('link', { name: 'Security', exact: true }).click();
    await expectPath(amara, '/account/security');
    await expectHeading(amara, 'Account security');
    await amara.getByRole('button', { name: 'Set up two-step verification', exact: true }).click();
    const qr = amara.getByRole('img', { name: 'QR code for your authenticator app' });
    await qr.waitFor();
    await expect.poll(() => qr.evaluate((img: HTMLImageElement) => img.complete && img.naturalWidth > 0)).toBe(true);
    await screenshot(amara, 'patient-security-enrolment');
  } finally {
    await Promise.all(contexts.map((c) => c.close()));
  }
});

test('the browser receives the security headers, and a CSP violation would be caught', async () => {
  // A watch of its own: this test causes a violation on purpose.
  const canary = new PageWatch();
  const context = await canary.context(browser!, service!.baseUrl);
  try {
    const page = await context.newPage();
    const apiResponse = page.waitForResponse((r) => new URL(r.url()).pathname === '/api/session');
    const doc = await page.goto('/sign-in');
    expect(doc?.status()).toBe(200);
    const headers = doc!.headers();
    expect(headers['content-security-policy']).toContain("script-src 'self'");
    expect(headers['content-security-policy']).toContain("frame-ancestors 'none'");
    expect(headers['content-security-policy']).toContain("object-src 'none'");
    expect(headers['x-frame-options']).toBe('DENY');
    expect(headers['x-content-type-options']).toBe('nosniff');
    expect(headers['referrer-policy']).toBe('no-referrer');
    const api = await apiResponse;
    expect(api.headers()['cache-control']).toBe('no-store');
    await expectHeading(page, 'Sign in');
    expect(canary.cspViolations).toEqual([]);

    // An injected inline script is refused by the policy, and the watcher sees it.
    const ran = await page.evaluate(() => {
      const script = document.createElement('script');
      script.textContent = 'window.__cspCanary = true';
      document.body.appendChild(script);
      return (window as unknown as { __cspCanary?: boolean }).__cspCanary === true;
    });
    expect(ran).toBe(false);
    await expect.poll(() => canary.cspViolations.length).toBeGreaterThan(0);
    expect(canary.cspViolations.join('\n')).toMatch(/script-src/);
  } finally {
    await context.close();
  }
});
