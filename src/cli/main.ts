import { parseArgs } from 'node:util';
import { ConfigError, loadConfig } from '../config';
import { DataDirInUse } from '../db';
import { AppError } from '../errors';

const HELP = `confidant — telehealth GP service

Usage: confidant <command> [options]

  serve                      Run the service (HTTP API, web app). Default command.
  migrate                    Apply database migrations as the owner, then exit.
  users add --role <clinician|dpo|admin> --email <email> --name "<display name>" [--password <pw>]
                             Create a staff account. Without --password a one-time password
                             is generated and printed. Staff enrol an authenticator app at first sign-in.
  features list              Every feature (kill switch): on or off, when, by whom and why.
  features off <name> --reason "<why>"
  features on <name> --reason "<why>"
                             Switch a feature off or on in every running process (audited).
                             After an automatic kill only the DPO can switch it back on.
  audit verify               Walk the audit log's hash chain; exit 1 and name the first bad event.
  totp <base32-secret>       Print the current 6-digit code for a TOTP secret (demo sign-in helper).

Configuration comes from the environment: see README.md ("Configuration").
With the embedded database, stop the server before running other commands.`;

async function main(argv: string[]): Promise<number> {
  const [command = 'serve', ...rest] = argv;
  if (command === 'help' || command === '--help' || command === '-h') {
    console.log(HELP);
    return 0;
  }
  if (command === 'totp') {
    const { totpCodeAt } = await import('../modules/identity/totp');
    if (!rest[0]) return usage('totp needs a base32 secret');
    console.log(totpCodeAt(rest[0]));
    return 0;
  }
  const config = loadConfig();
  switch (command) {
    case 'serve': {
      const { serve } = await import('./serve');
      await serve(config);
      return -1; // keeps running until a signal
    }
    case 'migrate': {
      const { openConfiguredDatabase } = await import('../server');
      const db = await openConfiguredDatabase(config);
      try {
        const { applied } = await db.migrate();
        console.log(applied.length ? `Applied: ${applied.join(', ')}` : 'Database is up to date.');
      } finally {
        await db.close();
      }
      return 0;
    }
    case 'users': {
      if (rest[0] !== 'add') return usage('users: only "users add" is supported');
      const { values } = parseArgs({
        args: rest.slice(1),
        options: { role: { type: 'string' }, email: { type: 'string' }, name: { type: 'string' }, password: { type: 'string' } },
      });
      const { addStaffUser } = await import('./users-add');
      return addStaffUser(config, values);
    }
    case 'features': {
      const { features } = await import('./features');
      return features(config, rest);
    }
    case 'audit': {
      if (rest[0] !== 'verify') return usage('audit: only "audit verify" is supported');
      const { verifyAudit } = await import('./audit-verify');
      return verifyAudit(config);
    }
    default:
      return usage(`unknown command "${command}"`);
  }
}

function usage(problem: string): number {
  console.error(`confidant: ${problem}\n\n${HELP}`);
  return 2;
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exit(code);
  },
  (err: unknown) => {
    if (err instanceof ConfigError || err instanceof AppError || err instanceof DataDirInUse) {
      console.error(`confidant: ${err.message}`);
      process.exit(2);
    }
    if (err instanceof Error && err.name === 'DatabaseUnreachable') {
      console.error(`confidant: ${err.message}`);
      process.exit(1);
    }
    console.error('confidant: failed:', err instanceof Error ? err.message : err);
    process.exit(1);
  },
);
