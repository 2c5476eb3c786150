import { describe, expect, it } from 'vitest';
import type { ServerSignal } from '../../contracts/consultations';
import { SignallingHub, type Peer } from './signalling-hub';

function peer(consultationId: string, accountId: string, role: 'patient' | 'clinician', sessionId = `s-${accountId}`) {
  const got: ServerSignal[] = [];
  const closed: number[] = [];
  const p: Peer = { consultationId, accountId, sessionId, role, send: (m) => void got.push(m), close: (code) => void closed.push(code) };
  return { p, got, closed, signals: () => got.filter((m) => m.type === 'signal') };
}

const offer = { type: 'signal' as const, data: { kind: 'offer' as const, sdp: 'v=0' } };

describe('the signalling hub', () => {
  it('relays only to the other party of the same consultation', () => {
    const hub = new SignallingHub();
    const parties = { patientId: 'p1', clinicianId: 'c1' };
    const patient = peer('k1', 'p1', 'patient');
    const gp = peer('k1', 'c1', 'clinician');
    const otherRoomPatient = peer('k2', 'p2', 'patient');
    hub.attach(patient.p, parties);
    hub.attach(gp.p, parties);
    hub.attach(otherRoomPatient.p, { patientId: 'p2', clinicianId: 'c1' });
    expect(hub.relay(gp.p, offer)).toBe('relayed');
    expect(patient.signals()).toEqual([{ type: 'signal', from: 'clinician', data: offer.data }]);
    expect(gp.signals()).toEqual([]);
    expect(otherRoomPatient.signals()).toEqual([]);
  });

  it('refuses to attach someone who is not a party, and to relay for a peer it does not hold', () => {
    const hub = new SignallingHub();
    const parties = { patientId: 'p1', clinicianId: 'c1' };
    hub.attach(peer('k1', 'p1', 'patient').p, parties);
    expect(() => hub.attach(peer('k1', 'p9', 'patient').p, parties)).toThrow(/not a party/);
    // A clinician claiming to be the patient side of the room.
    expect(() => hub.attach(peer('k1', 'c1', 'patient').p, parties)).toThrow(/not a party/);
    expect(hub.relay(peer('k1', 'p1', 'patient', 'another-session').p, offer)).toBe('not_member');
  });

  it('replaces an older connection of the same session, and reports presence', () => {
    const hub = new SignallingHub();
    const parties = { patientId: 'p1', clinicianId: 'c1' };
    const first = peer('k1', 'p1', 'patient');
    const gp = peer('k1', 'c1', 'clinician');
    hub.attach(gp.p, parties);
    hub.attach(first.p, parties);
    const reload = peer('k1', 'p1', 'patient');
    hub.attach(reload.p, parties);
    expect(first.closed).toEqual([4000]);
    expect(hub.presence('k1')).toEqual({ patient: true, clinician: true });
    hub.detach(reload.p);
    expect(hub.presence('k1')).toEqual({ patient: false, clinician: true });
    expect(gp.got.at(-1)).toEqual({ type: 'presence', presence: { patient: false, clinician: true } });
  });

  it('closes everyone when the consultation ends, and relays nothing after', () => {
    const hub = new SignallingHub();
    const parties = { patientId: 'p1', clinicianId: 'c1' };
    const patient = peer('k1', 'p1', 'patient');
    const gp = peer('k1', 'c1', 'clinician');
    hub.attach(patient.p, parties);
    hub.attach(gp.p, parties);
    hub.end('k1');
    expect(patient.closed).toEqual([4409]);
    expect(gp.closed).toEqual([4409]);
    expect(hub.relay(gp.p, offer)).toBe('not_member');
  });
});
