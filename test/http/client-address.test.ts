import type { IncomingMessage } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/config';
import { clientAddress, compileTrust } from '../../src/http/client-address';
import { GOOD_PASSWORD, uniqueEmail } from '../fixtures';
import { startTestService, testConfig, type TestService } from '../harness';

/**
 * Who the client is, behind a load balancer: only the configured proxies may say (X-Forwarded-For),
 * so a client cannot pick its own address to dodge the per-address throttles or to write what it
 * likes into the audit trail and the device list.
 */
describe('TRUST_PROXY', () => {
  it('is off by default and takes addresses, ranges and keywords', () => {
    expect(testConfig().trustProxy).toEqual([]);
    expect(testConfig({ TRUST_PROXY: '0' }).trustProxy).toEqual([]);
    expect(testConfig({ TRUST_PROXY: ' 10.0.0.0/8, 192.168.1.7 ,loopback' }).trustProxy).toEqual(['10.0.0.0/8', '192.168.1.7', 'loopback']);
  });

  it('refuses "trust every hop" and hop counts, and anything that is not an address, with a reason', () => {
    for (const value of ['1', 'true', 'yes', '2']) {
      expect(() => testConfig({ TRUST_PROXY: value }), value).toThrow(ConfigError);
      expect(() => testConfig({ TRUST_PROXY: value }), value).toThrow(/TRUST_PROXY: name the load balancers/);
    }
    for (const value of ['lb.example.com', '10.0.0.0/99', '10.0.0.1,,']) {
      expect(() => testConfig({ TRUST_PROXY: value }), value).toThrow(/TRUST_PROXY: must be addresses/);
    }
  });
});

async function registeredFrom(service: TestService, remote: string, forwardedFor?: string): Promise<string | null> {
  const client = service.client({ ip: remote });
  const res = await client.post(
    '/api/auth/register',
    { givenName: 'Proxy', familyName: 'Patient', dateOfBirth: '1990-05-17', email: uniqueEmail('proxy'), password: GOOD_PASSWORD },
    forwardedFor ? { 'x-forwarded-for': forwardedFor } : {},
  );
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  const sessions = await client.get('/api/account/sessions');
  expect(sessions.status).toBe(200);
  expect(sessions.body.sessions).toHaveLength(1);
  return sessions.body.sessions[0].clientIp;
}

describe('the client address the service records', () => {
  let plain: TestService;
  let behindLb: TestService;
  beforeAll(async () => {
    [plain, behindLb] = await Promise.all([startTestService(), startTestService({ config: testConfig({ TRUST_PROXY: '10.0.0.0/8' }) })]);
  });
  afterAll(async () => {
    await Promise.all([plain?.close(), behindLb?.close()]);
  });

  it('is the peer itself when no proxy is trusted, whatever X-Forwarded-For says', async () => {
    expect(await registeredFrom(plain, '198.51.100.20', '203.0.113.9')).toBe('198.51.100.20');
  });

  it('behind a trusted load balancer is the address it appended, not one the client sent ahead of it', async () => {
    expect(await registeredFrom(behindLb, '10.1.2.3', '203.0.113.9')).toBe('203.0.113.9');
    expect(await registeredFrom(behindLb, '10.1.2.3', '6.6.6.6, 203.0.113.10')).toBe('203.0.113.10');
  });

  it('ignores X-Forwarded-For from a peer that is not a trusted proxy', async () => {
    expect(await registeredFrom(behindLb, '198.51.100.21', '6.6.6.6')).toBe('198.51.100.21');
  });

  it('is worked out the same way for the signalling WebSocket upgrade', () => {
    const req = (remote: string, fwd?: string) =>
      ({ headers: fwd ? { 'x-forwarded-for': fwd } : {}, socket: { remoteAddress: remote }, connection: { remoteAddress: remote } }) as unknown as IncomingMessage;
    const trust = compileTrust(['10.0.0.0/8']);
    expect(clientAddress(req('10.1.2.3', '6.6.6.6, 203.0.113.10'), trust)).toBe('203.0.113.10');
    expect(clientAddress(req('198.51.100.21', '6.6.6.6'), trust)).toBe('198.51.100.21');
    expect(clientAddress(req('198.51.100.21', '6.6.6.6'), null)).toBe('198.51.100.21');
  });
});
