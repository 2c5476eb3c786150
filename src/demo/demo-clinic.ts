/**
 * The demo clinic: fixed people with fixed credentials, so that a newcomer can sign in
 * from the README. Seeded only in demo mode (never in production, never with CONFIDANT_DEMO=0).
 */
export interface DemoPerson {
  role: 'patient' | 'clinician' | 'dpo' | 'admin';
  email: string;
  password: string;
  displayName: string;
  givenName?: string;
  familyName?: string;
  dateOfBirth?: string;
  nhsNumber?: string;
  /** Base32 TOTP secret for staff, enrolled already. Demo only. */
  totpSecret?: string;
}

export const DEMO_PEOPLE: DemoPerson[] = [
  {
    role: 'patient', email: 'amara@demo.confidant.test', password: 'violet-harbour-lantern-2026',
    displayName: 'Amara', givenName: 'Amara', familyName: 'Okafor', dateOfBirth: '1986-04-12', nhsNumber: '9434765919',
  },
  {
    role: 'patient', email: 'ben@demo.confidant.test', password: 'copper-meadow-kettle-2026',
    displayName: 'Ben', givenName: 'Ben', familyName: 'Walsh', dateOfBirth: '1972-11-30', nhsNumber: '9434765870',
  },
  {
    role: 'patient', email: 'chloe@demo.confidant.test', password: 'silver-orchard-compass-2026',
    displayName: 'Chloe', givenName: 'Chloe', familyName: 'Nguyen', dateOfBirth: '2001-02-03',
  },
  {
    role: 'clinician', email: 'dr.patel@demo.confidant.test', password: 'clinic-window-maple-2026',
    displayName: 'Dr Priya Patel', totpSecret: 'KVKFKRCPNZQUYMLXOVYDSQKJKZDTSRLD',
  },
  {
    role: 'clinician', email: 'dr.hughes@demo.confidant.test', password: 'surgery-garden-violin-2026',
    displayName: 'Dr Owen Hughes', totpSecret: 'MFRGGZDFMZTWQ2LKNNWG23TPOBYXE43U',
  },
  {
    role: 'dpo', email: 'dpo@demo.confidant.test', password: 'ledger-beacon-anchor-2026',
    displayName: 'Sam Rivera (DPO)', totpSecret: 'ONSWG4TFOQYTEMZUGU3DOOBZGAYTEMZU',
  },
  {
    role: 'admin', email: 'admin@demo.confidant.test', password: 'rota-clipboard-harbour-2026',
    displayName: 'Jo Bennett (practice manager)', totpSecret: 'GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ',
  },
];
