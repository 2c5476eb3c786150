import type { ClientSignal, ServerSignal } from '../../contracts/consultations';

export type PartyRole = 'patient' | 'clinician';

/** One browser tab connected to one consultation, as one principal. */
export interface Peer {
  readonly consultationId: string;
  readonly accountId: string;
  readonly sessionId: string;
  readonly role: PartyRole;
  send(message: ServerSignal): void;
  close(code: number, reason: string): void;
}

interface Room {
  readonly patientId: string;
  readonly clinicianId: string;
  readonly peers: Set<Peer>;
  ended: boolean;
}

export type RelayOutcome = 'relayed' | 'not_member' | 'ended';

/**
 * Who is connected to which consultation, and the relay between them. A room knows its two
 * parties (from the database, at the first connect); a message from a peer goes only to the
 * peers of the other party of the same room, and membership is checked again on every message.
 * There is no way to address a peer: the destination is always "the other side of my call".
 */
export class SignallingHub {
  private readonly rooms = new Map<string, Room>();

  /** `pingMs`: how often a page pings (told in the welcome); the socket is dropped after 2.5 silent ones. */
  constructor(private readonly pingMs = 20_000) {}

  /** Registers a peer whose membership the caller has just proved against the database. */
  attach(peer: Peer, parties: { patientId: string; clinicianId: string }): void {
    let room = this.rooms.get(peer.consultationId);
    if (!room) {
      room = { patientId: parties.patientId, clinicianId: parties.clinicianId, peers: new Set(), ended: false };
      this.rooms.set(peer.consultationId, room);
    }
    if (!this.isMember(room, peer)) throw new Error('peer is not a party of this consultation');
    // One live connection per party and session: a reload replaces the old tab's socket.
    for (const other of room.peers) {
      if (other.role === peer.role && other.sessionId === peer.sessionId) {
        room.peers.delete(other);
        other.close(4000, 'replaced by a newer connection');
      }
    }
    room.peers.add(peer);
    peer.send({ type: 'welcome', you: peer.role, presence: this.presenceOf(room), pingMs: this.pingMs });
    this.broadcastPresence(room, peer);
  }

  detach(peer: Peer): void {
    const room = this.rooms.get(peer.consultationId);
    if (!room || !room.peers.delete(peer)) return;
    this.broadcastPresence(room);
    if (room.peers.size === 0) this.rooms.delete(peer.consultationId);
  }

  /** Relays a signalling message to the other party's peers of the same consultation. */
  relay(from: Peer, message: Exclude<ClientSignal, { type: 'ping' }>): RelayOutcome {
    const room = this.rooms.get(from.consultationId);
    if (!room || !room.peers.has(from) || !this.isMember(room, from)) return 'not_member';
    if (room.ended) return 'ended';
    const out: ServerSignal =
      message.type === 'signal'
        ? { type: 'signal', from: from.role, data: message.data }
        : { type: 'media', from: from.role, audio: message.audio, video: message.video };
    for (const to of room.peers) {
      if (to.role !== from.role && this.isMember(room, to)) to.send(out);
    }
    return 'relayed';
  }

  /** Something about the consultation changed: both sides fetch it again. */
  changed(consultationId: string): void {
    const room = this.rooms.get(consultationId);
    if (!room) return;
    for (const p of room.peers) p.send({ type: 'changed' });
  }

  /** The consultation has ended: tell everyone, then close every connection to it. */
  end(consultationId: string): void {
    const room = this.rooms.get(consultationId);
    if (!room) return;
    room.ended = true;
    for (const p of [...room.peers]) {
      p.send({ type: 'changed' });
      p.close(4409, 'the consultation has ended');
    }
    this.rooms.delete(consultationId);
  }

  presence(consultationId: string): { patient: boolean; clinician: boolean } {
    const room = this.rooms.get(consultationId);
    return room ? this.presenceOf(room) : { patient: false, clinician: false };
  }

  /** Every connected peer (the session sweep re-checks each one's session). */
  peers(): Peer[] {
    const out: Peer[] = [];
    for (const room of this.rooms.values()) out.push(...room.peers);
    return out;
  }

  closeAll(code: number, reason: string): void {
    for (const p of this.peers()) p.close(code, reason);
    this.rooms.clear();
  }

  private isMember(room: Room, peer: Peer): boolean {
    return peer.role === 'patient' ? peer.accountId === room.patientId : peer.accountId === room.clinicianId;
  }

  private presenceOf(room: Room) {
    let patient = false;
    let clinician = false;
    for (const p of room.peers) {
      if (p.role === 'patient') patient = true;
      else clinician = true;
    }
    return { patient, clinician };
  }

  private broadcastPresence(room: Room, except?: Peer) {
    const presence = this.presenceOf(room);
    for (const p of room.peers) if (p !== except) p.send({ type: 'presence', presence });
  }
}
