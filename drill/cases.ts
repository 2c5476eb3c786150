import type { FaultPoint } from '../src/testing/fault-points';

/**
 * The 2020 class of fault (one patient's replays reaching another), one layer at a time, then
 * the two query-side layers together so that only the egress check is left.
 */
export interface FaultCase {
  name: string;
  description: string;
  /** Fault points both processes start with (CONFIDANT_FAULTS). */
  faults: FaultPoint[];
  /** The bad migration: the replay tables' read policies let every row through (drill/database.ts). */
  rlsOpen: boolean;
}

export const CASES: FaultCase[] = [
  {
    name: '1 scope filter dropped',
    description: 'The replay queries (list, details, media) lose their "patient_id = me" filter (fault point replay_scope_dropped).',
    faults: ['replay_scope_dropped'],
    rlsOpen: false,
  },
  {
    name: '2 RLS policy open',
    description: "A migration replaces the recordings table's read policy with USING (true) for the service role (and lets every consultation through, which the replay list joins).",
    faults: [],
    rlsOpen: true,
  },
  {
    name: '3 owner from request',
    description: "The replays handed to the egress check carry the requester's id as their patient instead of the consultation's (fault point replay_owner_from_request).",
    faults: ['replay_owner_from_request'],
    rlsOpen: false,
  },
  {
    name: '4 egress check skipped',
    description: 'The egress check lets every response through unchecked (fault point egress_skipped).',
    faults: ['egress_skipped'],
    rlsOpen: false,
  },
  {
    name: '5 scope + RLS',
    description: 'Cases 1 and 2 together: no scope filter and the replay tables open, so that only the egress check is left.',
    faults: ['replay_scope_dropped'],
    rlsOpen: true,
  },
];
