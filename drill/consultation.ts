import type { Page } from 'playwright-core';
import { demoPerson, expectHeading, expectPath, fetchIn, sessionIn, sleep } from '../test/browser/support';

export const CHLOE = demoPerson('chloe@demo.confidant.test');
export const PATEL = demoPerson('dr.patel@demo.confidant.test');
const CHLOE_NAME = `${CHLOE.givenName} ${CHLOE.familyName}`;

/** Polls `fn` until it returns a truthy value; throws `what` after `timeoutMs`. */
export async function until<T>(what: string, fn: () => Promise<T>, timeoutMs = 15_000, intervalMs = 200): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v) return v as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`drill: timed out waiting for ${what}`);
    await sleep(intervalMs);
  }
}

/** Media of `kind` is arriving on the page's peer connection (frames decoded for video, packets for audio). */
function receiving(page: Page, kind: 'audio' | 'video'): Promise<number> {
  return page.evaluate(async (kind) => {
    const pc = (window as unknown as { __confidantPeer?: RTCPeerConnection | null }).__confidantPeer;
    let n = 0;
    if (!pc) return n;
    (await pc.getStats()).forEach((s: { type: string; kind?: string; packetsReceived?: number; framesDecoded?: number }) => {
      if (s.type === 'inbound-rtp' && s.kind === kind) n += (kind === 'audio' ? s.packetsReceived : s.framesDecoded) ?? 0;
    });
    return n;
  }, kind);
}

async function flowing(page: Page, kind: 'audio' | 'video', who: string) {
  const first = await until(`${who}: ${kind} arriving`, () => receiving(page, kind), 20_000);
  await until(`${who}: ${kind} still arriving`, async () => (await receiving(page, kind)) > first, 10_000);
}

async function answer(page: Page, title: string, button: string) {
  const dialog = page.getByRole('dialog', { name: title });
  await dialog.waitFor();
  await dialog.getByRole('button', { name: button, exact: true }).click();
  await dialog.waitFor({ state: 'hidden' });
}

/**
 * The real flow, in two browser contexts with fake camera and microphone, both on one process
 * (call signalling stays within a process): Chloe books an audio consultation with Dr Patel and
 * joins; he starts it; she allows it to be recorded; he switches it to video, she agrees and allows
 * video to be recorded; a few seconds later he ends it. Returns the consultation's id.
 */
export async function holdRecordedConsultation(chloe: Page, patel: Page, log: (msg: string) => void): Promise<string> {
  // Dr Patel works around the clock for the drill, so his earliest free slot starts within minutes.
  const gpId = (await sessionIn(patel)).account!.id;
  const hours = await fetchIn(patel, 'PUT', `/api/clinicians/${gpId}/availability`, {
    rules: [1, 2, 3, 4, 5, 6, 7].map((weekday) => ({ weekday, start: '00:00', end: '24:00' })),
  });
  if (hours.status !== 200) throw new Error(`availability: ${hours.status} ${hours.text}`);

  await chloe.goto('/patient/book');
  await expectHeading(chloe, 'Book a consultation');
  await chloe.getByLabel('GP', { exact: true }).selectOption({ label: PATEL.displayName });
  const radios = chloe.getByRole('group', { name: 'Time', exact: true }).getByRole('radio');
  await radios.first().waitFor();
  let startsAt = '';
  for (let i = 0; ; i++) {
    startsAt = (await radios.nth(i).getAttribute('value'))!.split('|')[1]!;
    if (new Date(startsAt).getTime() > Date.now() + 20_000) {
      await radios.nth(i).check();
      break;
    }
  }
  await chloe.getByRole('group', { name: 'Consultation type', exact: true }).getByRole('radio', { name: 'Audio only', exact: true }).check();
  await chloe.getByLabel('Reason for the consultation', { exact: true }).fill('Cough for a week (breach drill)');
  await chloe.getByRole('button', { name: 'Book consultation', exact: true }).click();
  await expectPath(chloe, '/patient/appointments');
  const appointment = chloe
    .getByRole('list', { name: 'Upcoming', exact: true })
    .locator(':scope > li')
    .filter({ has: chloe.locator(`h3 time[datetime="${startsAt}"]`) });
  await appointment.getByRole('button', { name: 'Join consultation', exact: true }).click({ timeout: 45_000 });
  await chloe.waitForURL(/\/consultations\/[0-9a-f-]{36}$/);
  const consultationId = new URL(chloe.url()).pathname.split('/').pop()!;
  await chloe.getByText(/^You are in the waiting room\./).waitFor();
  log('patient booked an audio consultation and is in the waiting room');

  const row = patel.getByRole('table', { name: 'Waiting room' }).getByRole('row').filter({ hasText: CHLOE_NAME });
  await row.getByRole('button', { name: 'Start consultation', exact: true }).click({ timeout: 20_000 });
  await expectPath(patel, `/consultations/${consultationId}`);
  await Promise.all([flowing(chloe, 'audio', 'patient'), flowing(patel, 'audio', 'GP')]);
  log('audio call connected');

  await patel.getByRole('button', { name: 'Ask to record', exact: true }).click();
  await answer(chloe, `${PATEL.displayName} asks to record this consultation (sound only)`, 'Allow');
  await patel.getByRole('button', { name: 'Start recording', exact: true }).click();
  await chloe.getByRole('status').filter({ hasText: /^● Recording sound only$/ }).waitFor();
  log('recording sound, with consent');

  await patel.getByRole('button', { name: 'Switch to video', exact: true }).click();
  await answer(chloe, `${PATEL.displayName} asks to switch to video`, 'Agree');
  await answer(chloe, `${PATEL.displayName} asks to record video too`, 'Allow');
  await chloe.getByRole('status').filter({ hasText: /^● Recording video recorded$/ }).waitFor();
  await Promise.all([flowing(chloe, 'video', 'patient'), flowing(patel, 'video', 'GP')]);
  log('switched to video; video recorded with consent');

  await sleep(3_000);
  await patel.getByRole('button', { name: 'End consultation', exact: true }).click();
  await patel.getByRole('dialog', { name: 'End the consultation?' }).getByRole('button', { name: 'Yes, end it', exact: true }).click();
  await chloe.getByText(/^The consultation has ended/).waitFor({ timeout: 30_000 });
  log('consultation ended');
  return consultationId;
}
