import type { Config } from '../config';

/**
 * Fault points for the breach drill (`npm run drill`, drill/): each one puts back, at one line of
 * the code, one layer of the 2020 class of bug, so the drill can show which layer stops it and
 * how fast detection contains it. They are switched on only by CONFIDANT_FAULTS, which loadConfig
 * refuses in production mode, and a production configuration switches none on here whatever it
 * carries. Never read the environment here: the configuration is the only way in.
 */
export const FAULT_POINTS = {
  replay_scope_dropped: 'the replay queries (list, details, media) lose their visibility predicate: patient_id = me / clinician_id = me',
  replay_owner_from_request: "the replays handed to the egress check name the requester as their patient instead of the consultation's patient",
  egress_skipped: 'the egress check lets every response through unchecked',
} as const;
export type FaultPoint = keyof typeof FAULT_POINTS;
export const FAULT_POINT_NAMES = Object.keys(FAULT_POINTS) as FaultPoint[];

export function isFaultPoint(name: string): name is FaultPoint {
  return Object.hasOwn(FAULT_POINTS, name);
}

/** What this process switched on: one set for the process, written once at service start. */
let active: ReadonlySet<FaultPoint> = new Set();

/** At service start (createService): the configuration's fault points, none at all in production mode. */
export function setFaults(config: Pick<Config, 'mode' | 'faults'>): void {
  active = config.mode === 'production' ? new Set() : new Set(config.faults.filter(isFaultPoint));
}

/** Whether this fault point is switched on in this process. */
export function faultActive(name: FaultPoint): boolean {
  return active.size > 0 && active.has(name);
}

/** The fault points switched on in this process (start-up logs them loudly). */
export function activeFaults(): FaultPoint[] {
  return [...active];
}
