import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { assertEgressAllowed, EgressViolation } from '../../src/access/egress';
import type { Scope } from '../../src/access/scope';
import { ConfigError, loadConfig } from '../../src/config';
import { FAULT_POINT_NAMES, faultActive, setFaults } from '../../src/testing/fault-points';

/** What production needs besides the faults, so that the faults are the only thing refused. */
const PRODUCTION = { CONFIDANT_MODE: 'production', DATABASE_URL: 'postgres://app@db/confidant', RECORDING_MASTER_KEY_FILE: '/etc/confidant/master.key' };
const ALL = FAULT_POINT_NAMES.join(',');

// Test files share modules in a worker (vitest isolate: false): leave no fault point on.
afterEach(() => {
  setFaults({ mode: 'development', faults: [] });
  delete process.env.CONFIDANT_FAULTS;
});

describe('fault points (the breach drill) cannot be switched on in production', () => {
  it('production mode refuses to load a configuration with CONFIDANT_FAULTS set', () => {
    expect(loadConfig(PRODUCTION).faults).toEqual([]);
    for (const faults of [ALL, 'egress_skipped', ' replay_scope_dropped ', 'no_such_fault']) {
      expect(() => loadConfig({ ...PRODUCTION, CONFIDANT_FAULTS: faults })).toThrow(ConfigError);
      expect(() => loadConfig({ ...PRODUCTION, CONFIDANT_FAULTS: faults })).toThrow(/CONFIDANT_FAULTS.*production mode refuses/);
    }
    // NODE_ENV=production means production mode too.
    const { CONFIDANT_MODE: _mode, ...rest } = PRODUCTION;
    expect(() => loadConfig({ ...rest, NODE_ENV: 'production', CONFIDANT_FAULTS: 'egress_skipped' })).toThrow(/production mode refuses/);
  });

  it('in production mode faultActive is false for every fault point, whatever the environment or the configuration carries', () => {
    process.env.CONFIDANT_FAULTS = ALL;
    setFaults(loadConfig(PRODUCTION));
    for (const name of FAULT_POINT_NAMES) expect(faultActive(name), name).toBe(false);
    // A production configuration that somehow carries fault points (built by hand, not by loadConfig).
    setFaults({ mode: 'production', faults: [...FAULT_POINT_NAMES] });
    for (const name of FAULT_POINT_NAMES) expect(faultActive(name), name).toBe(false);
  });

  it('refuses an unknown fault point name at load, in development too', () => {
    expect(() => loadConfig({ CONFIDANT_FAULTS: 'egress_skipped,egress_skiped' })).toThrow(/unknown fault point "egress_skiped"/);
    expect(() => loadConfig({ CONFIDANT_FAULTS: 'everything' })).toThrow(ConfigError);
    expect(loadConfig({ CONFIDANT_FAULTS: ` ${ALL} ` }).faults).toEqual(FAULT_POINT_NAMES);
    expect(loadConfig({}).faults).toEqual([]);
  });

  it('in development, only the configured fault points are on, and only through the configuration', () => {
    process.env.CONFIDANT_FAULTS = ALL;
    setFaults(loadConfig({}));
    for (const name of FAULT_POINT_NAMES) expect(faultActive(name), name).toBe(false);
    setFaults(loadConfig({ CONFIDANT_FAULTS: 'egress_skipped' }));
    expect(FAULT_POINT_NAMES.filter(faultActive)).toEqual(['egress_skipped']);
  });

  it('egress_skipped really skips the egress check (what the drill relies on), and only while it is on', async () => {
    const scope = { principal: { kind: 'patient', accountId: 'me', sessionId: 's' } } as unknown as Scope;
    await expect(assertEgressAllowed(scope, ['someone-else'])).rejects.toBeInstanceOf(EgressViolation);
    setFaults({ mode: 'development', faults: ['egress_skipped'] });
    await expect(assertEgressAllowed(scope, ['someone-else'])).resolves.toBeUndefined();
    setFaults({ mode: 'production', faults: ['egress_skipped'] });
    await expect(assertEgressAllowed(scope, ['someone-else'])).rejects.toBeInstanceOf(EgressViolation);
  });

  it('each fault point sits at the sites the drill names, one line each, and nowhere else', () => {
    const src = path.resolve('src');
    const files = (dir: string): string[] =>
      readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? files(path.join(dir, e.name)) : e.name.endsWith('.ts') ? [path.join(dir, e.name)] : []));
    const sites: string[] = [];
    for (const file of files(src)) {
      if (file.includes(`${path.sep}testing${path.sep}`)) continue;
      for (const m of readFileSync(file, 'utf8').matchAll(/faultActive\('([a-z_]+)'\)/g)) sites.push(`${path.relative(src, file)}: ${m[1]}`);
    }
    expect(sites.sort()).toEqual(
      [
        'access/egress.ts: egress_skipped',
        'modules/recordings/recordings.ts: replay_scope_dropped',
        'modules/recordings/recordings.ts: replay_owner_from_request',
        'modules/recordings/recordings.ts: replay_owner_from_request',
      ].sort(),
    );
  });
});
