import { parseArgs } from 'node:util';
import { createScopes } from '../access/scope';
import type { Config } from '../config';
import { AppError } from '../errors';
import { listFeatures, setFeature } from '../modules/features/features';
import { openConfiguredDatabase } from '../server';

const CLI_REQUEST = { requestId: `cli-${process.pid}`, clientIp: null, userAgent: 'confidant-cli' };

/**
 * `features list | off NAME --reason … | on NAME --reason …`: system work that names the
 * operator's command, audited; a change NOTIFYs every running process (PostgreSQL).
 */
export async function features(config: Config, args: string[]): Promise<number> {
  const [action, ...rest] = args;
  if (action !== 'list' && action !== 'on' && action !== 'off') {
    throw new AppError('bad_request', 'features: use "features list", "features off NAME --reason …" or "features on NAME --reason …"');
  }
  const { values, positionals } = parseArgs({ args: rest, options: { reason: { type: 'string' } }, allowPositionals: true });
  const name = positionals[0];
  if (action !== 'list') {
    if (!name || positionals.length > 1) throw new AppError('bad_request', `features ${action}: name one feature`);
    if (!values.reason || values.reason.trim().length < 3) throw new AppError('bad_request', `features ${action}: --reason is required (why, in a few words)`);
  }
  const db = await openConfiguredDatabase(config);
  try {
    await db.migrate();
    const scopes = createScopes(db);
    if (action === 'list') {
      const all = await scopes.system('operator: features list', CLI_REQUEST, (scope) => listFeatures(scope));
      const width = Math.max(...all.map((f) => f.name.length));
      for (const f of all) {
        const how = f.enabled ? 'on ' : f.disabledByKind === 'automatic' ? 'OFF (automatic)' : 'OFF';
        console.log(`${f.name.padEnd(width)}  ${how.padEnd(15)}  ${f.changedAt.toISOString()}  ${f.changedBy}: ${f.reason}`);
      }
      return 0;
    }
    try {
      const f = await scopes.system(`operator: features ${action}`, CLI_REQUEST, (scope) => setFeature(scope, name!, action === 'on', values.reason!));
      console.log(`${f.name} is now ${f.enabled ? 'on' : 'off'} (${f.reason}).`);
      return 0;
    } catch (err) {
      if (err instanceof AppError && err.code === 'not_found') throw new AppError('bad_request', `no feature named "${name}" (see "features list")`);
      if (err instanceof AppError && err.code === 'dpo_required') {
        throw new AppError('dpo_required', `${name} was switched off automatically; only the data-protection officer can switch it back on (PUT /api/features/${name}).`);
      }
      throw err;
    } finally {
      await scopes.close();
    }
  } finally {
    await db.close();
  }
}
