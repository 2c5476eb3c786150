import http from 'node:http';
import { performance } from 'node:perf_hooks';
import { send, summarise, type LatencySummary } from './loadgen';

/**
 * The booking race: C client loops, each a signed-in patient, POST /api/appointments for slots
 * drawn at random from a shared pool until every slot is gone.
 *
 * What the clients know: the pool starts as the slots offered by GET /api/slots, in one shuffled
 * order. A client picks at random among the first `window` slots of that order not yet known to
 * be gone (as if every client had just refreshed the list and went for one of the first few), so
 * clients really collide: two or more often ask for the same slot at the same moment, and only
 * the database's partial unique index decides. A slot is known to be gone once a 201 or a 409
 * `slot_taken` ("Someone has just booked that slot") has come back for it; nobody cancels
 * during the race, so a gone slot never comes back.
 *
 * Each patient books once, then the loop signs in as the next patient from a shared queue, so the
 * per-patient cap of future bookings never applies and a patient never collides with themself.
 *
 * Anything other than 201 or 409 slot_taken (another status, another 409, a socket error, a
 * timeout, a 201 for a slot someone already won, or a 201 whose body does not match the slot)
 * stops the race and is reported as a failure.
 */

export interface RaceSlot {
  clinicianId: string;
  startsAt: string;
}

export interface RacePatient {
  id: string;
  cookie: string;
  csrfToken: string;
}

export interface Win {
  slot: number;
  appointmentId: string;
  patientId: string;
}

export interface RaceResult {
  wallMs: number;
  attempts: number;
  created: number;
  slotTaken: number;
  /** Per slot: how many requests asked for it (1 = no collision). */
  attemptsPerSlot: { mean: number; max: number };
  wins: Win[];
  latencyMs: { all: LatencySummary; created: LatencySummary; slotTaken: LatencySummary };
  failures: { total: number; byKind: Record<string, number>; examples: string[] };
  patientsUsed: number;
  /** Stopped because of the deadline (the slots were not all gone). */
  timedOut: boolean;
  generatorEventLoopUtilization: number;
}

export interface RaceOptions {
  host: string;
  port: number;
  clients: number;
  slots: RaceSlot[];
  patients: RacePatient[];
  window: number;
  deadlineMs: number;
  timeoutMs?: number;
}

function shuffle<T>(xs: T[]): T[] {
  const a = [...xs];
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}

export async function runBookingRace(opts: RaceOptions): Promise<RaceResult> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: opts.clients, maxFreeSockets: opts.clients });
  const timeoutMs = opts.timeoutMs ?? 10_000;
  /** Slot indexes not known to be gone, in the shared shuffled order. */
  const open = shuffle(opts.slots.map((_, i) => i));
  const gone = new Set<number>();
  const wonBy = new Map<number, Win>();
  const asked = new Array<number>(opts.slots.length).fill(0);
  const all: number[] = [];
  const createdLat: number[] = [];
  const takenLat: number[] = [];
  const failures = { total: 0, byKind: {} as Record<string, number>, examples: [] as string[] };
  let nextPatient = 0;
  let stopped = false;
  let timedOut = false;
  let attempts = 0;

  const fail = (kind: string, example: string) => {
    failures.total++;
    failures.byKind[kind] = (failures.byKind[kind] ?? 0) + 1;
    if (failures.examples.length < 5) failures.examples.push(example);
    stopped = true;
  };
  const markGone = (slot: number) => {
    if (gone.has(slot)) return;
    gone.add(slot);
    const at = open.indexOf(slot);
    if (at >= 0) open.splice(at, 1);
  };

  const deadline = setTimeout(() => {
    timedOut = true;
    stopped = true;
  }, opts.deadlineMs);
  const eluStart = performance.eventLoopUtilization();
  const t0 = performance.now();

  const client = async (n: number) => {
    let patient = opts.patients[nextPatient++];
    while (!stopped && open.length > 0) {
      if (!patient) {
        fail('out of patients', `client ${n}: no patient left to book as (${opts.patients.length} prepared)`);
        return;
      }
      const slot = open[Math.floor(Math.random() * Math.min(opts.window, open.length))]!;
      const s = opts.slots[slot]!;
      asked[slot]!++;
      attempts++;
      const body = JSON.stringify({ clinicianId: s.clinicianId, startsAt: s.startsAt, mode: attempts % 2 ? 'audio' : 'video', reason: 'Bench booking race' });
      const started = performance.now();
      let res;
      try {
        res = await send(
          agent,
          opts.host,
          opts.port,
          {
            method: 'POST',
            path: '/api/appointments',
            headers: {
              'content-type': 'application/json',
              'user-agent': 'confidant-bench',
              cookie: patient.cookie,
              'x-csrf-token': patient.csrfToken,
            },
            body,
          },
          timeoutMs,
        );
      } catch (err) {
        const msg = err instanceof Error ? err.message : String(err);
        fail(msg.startsWith('timeout') ? 'timeout' : 'socket error', `POST /api/appointments -> ${msg}`);
        return;
      }
      const ms = performance.now() - started;
      all.push(ms);
      let parsed: { id?: string; clinician?: { id?: string }; startsAt?: string; error?: { code?: string; message?: string } } = {};
      try {
        parsed = JSON.parse(res.body);
      } catch {
        // reported below
      }
      if (res.status === 201) {
        createdLat.push(ms);
        if (!parsed.id || parsed.clinician?.id !== s.clinicianId || new Date(parsed.startsAt ?? '').getTime() !== new Date(s.startsAt).getTime()) {
          fail('201 not matching the slot', `slot ${s.clinicianId} ${s.startsAt} -> ${res.body.slice(0, 200)}`);
          return;
        }
        const previous = wonBy.get(slot);
        if (previous) {
          fail('slot booked twice', `slot ${s.clinicianId} ${s.startsAt}: ${previous.appointmentId} and ${parsed.id}`);
          return;
        }
        wonBy.set(slot, { slot, appointmentId: parsed.id, patientId: patient.id });
        markGone(slot);
        patient = opts.patients[nextPatient++];
      } else if (res.status === 409 && parsed.error?.code === 'slot_taken' && /someone has just booked/i.test(parsed.error.message ?? '')) {
        takenLat.push(ms);
        markGone(slot);
      } else {
        fail(`HTTP ${res.status}${parsed.error?.code ? ` ${parsed.error.code}` : ''}`, `POST /api/appointments ${s.clinicianId} ${s.startsAt} -> ${res.status} ${res.body.slice(0, 200)}`);
        return;
      }
    }
  };

  await Promise.all(Array.from({ length: opts.clients }, (_, n) => client(n)));
  const wallMs = performance.now() - t0;
  clearTimeout(deadline);
  const elu = performance.eventLoopUtilization(eluStart).utilization;
  agent.destroy();
  const askedSlots = asked.filter((n) => n > 0);
  return {
    wallMs,
    attempts,
    created: createdLat.length,
    slotTaken: takenLat.length,
    attemptsPerSlot: { mean: askedSlots.reduce((a, b) => a + b, 0) / Math.max(1, askedSlots.length), max: Math.max(0, ...asked) },
    wins: [...wonBy.values()],
    latencyMs: { all: summarise(all), created: summarise(createdLat), slotTaken: summarise(takenLat) },
    failures,
    patientsUsed: Math.min(nextPatient, opts.patients.length),
    timedOut,
    generatorEventLoopUtilization: elu,
  };
}
