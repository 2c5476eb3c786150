import { Email } from '../contracts/auth';
import type { Config } from '../config';
import { createScopes } from '../access/scope';
import { openConfiguredDatabase } from '../server';
import { createStaffAccount, generateInitialPassword, type StaffRoleName } from '../modules/identity/staff-accounts';
import { AppError } from '../errors';

export async function addStaffUser(
  config: Config,
  values: { role?: string | undefined; email?: string | undefined; name?: string | undefined; password?: string | undefined },
): Promise<number> {
  const role = values.role as StaffRoleName | undefined;
  if (!role || !['clinician', 'dpo', 'admin'].includes(role)) throw new AppError('bad_request', '--role must be clinician, dpo or admin');
  const email = Email.safeParse(values.email ?? '');
  if (!email.success) throw new AppError('bad_request', '--email must be a valid email address');
  const name = values.name?.trim();
  if (!name) throw new AppError('bad_request', '--name is required (the name colleagues and patients see)');
  const password = values.password ?? generateInitialPassword();
  const db = await openConfiguredDatabase(config);
  try {
    await db.migrate();
    const scopes = createScopes(db);
    const { id } = await scopes.system('operator: users add', { requestId: `cli-${process.pid}`, clientIp: null, userAgent: 'confidant-cli' }, (scope) =>
      createStaffAccount(scope, { email: email.data, displayName: name, role, password }),
    );
    console.log(`Created ${role} ${email.data} (id ${id}).`);
    if (!values.password) console.log(`One-time password (give it to them privately): ${password}`);
    console.log('At first sign-in they must set up an authenticator app.');
    return 0;
  } finally {
    await db.close();
  }
}
