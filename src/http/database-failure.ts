import { classifyDatabaseError, CommitOutcomeUnknown, DeadlineExceeded } from '../db';
import { AppError } from '../errors';

/** What a caller is told when the database fails it: a 503 with a stable code and when to try again. */
export function databaseFailureAnswer(error: unknown): AppError | null {
  if (error instanceof DeadlineExceeded) {
    return new AppError('deadline_exceeded', 'This took too long, so nothing was changed. Please try again in a moment.', { headers: { 'retry-after': '1' } });
  }
  if (error instanceof CommitOutcomeUnknown) {
    return new AppError(
      'outcome_unknown',
      'We lost contact with our database while saving, so we cannot tell whether your change was saved. Check before trying again.',
      { headers: { 'retry-after': '2' } },
    );
  }
  switch (classifyDatabaseError(error)) {
    case 'unavailable':
      return new AppError('database_unavailable', 'The service is briefly unavailable. Please try again in a moment.', { headers: { 'retry-after': '2' } });
    case 'timeout':
      return new AppError('deadline_exceeded', 'This took too long, so nothing was changed. Please try again in a moment.', { headers: { 'retry-after': '1' } });
    case 'storage_full':
      return new AppError('storage_full', 'The service has run out of storage space, so nothing was saved. The team has been alerted; please try again later.', {
        headers: { 'retry-after': '60' },
      });
    default:
      return null;
  }
}

