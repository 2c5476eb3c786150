import type { Config } from '../config';
import { createScopes } from '../access/scope';
import { verifyAuditChain } from '../audit/verify';
import { openConfiguredDatabase } from '../server';

export async function verifyAudit(config: Config): Promise<number> {
  const db = await openConfiguredDatabase(config);
  try {
    const scopes = createScopes(db);
    const request = { requestId: `cli-${process.pid}`, clientIp: null, userAgent: 'confidant-cli' };
    const result = await scopes.system('operator: audit verify', request, async (scope) => {
      const r = await verifyAuditChain(scope.tx);
      scope.audit({ action: 'audit.verify', objectType: 'audit_log', outcome: r.ok ? 'success' : 'failure', details: { checked: r.checked } });
      return r;
    });
    if (result.ok) {
      console.log(`Audit log intact: ${result.checked} events, chain head at #${result.headSeq}.`);
      return 0;
    }
    const bad = result.firstBad!;
    console.error(`Audit log BROKEN at event #${bad.seq} (id ${bad.id}): ${bad.problem.replace('_', ' ')}. ${result.checked} events before it verified.`);
    return 1;
  } finally {
    await db.close();
  }
}
