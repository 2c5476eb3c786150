import { ApiError, errorMessage } from '../api';

/** What went wrong with a form: one summary line, and messages keyed by field name. */
export interface FormErrors {
  summary: string | null;
  fields: Record<string, string>;
}

export const NO_ERRORS: FormErrors = { summary: null, fields: {} };

/**
 * Turns a thrown error into form errors. `issues[].path` names the field (the last segment of a
 * dotted path is tried too); `codeFields` ties an error code with no issues, such as
 * `weak_password`, to the field it is about.
 */
export function formErrorsFrom(
  error: unknown,
  knownFields: readonly string[],
  codeFields: Record<string, string> = {},
): FormErrors {
  if (!(error instanceof ApiError)) return { summary: errorMessage(error), fields: {} };
  const fields: Record<string, string> = {};
  for (const issue of error.issues) {
    const last = issue.path.split('.').pop() ?? '';
    const field = knownFields.includes(issue.path) ? issue.path : knownFields.includes(last) ? last : null;
    if (field && !fields[field]) fields[field] = issue.message;
  }
  const codeField = codeFields[error.code];
  if (codeField && !fields[codeField]) fields[codeField] = error.message;
  // A problem with a field reads the same whether the browser or the server found it.
  return { summary: Object.keys(fields).length > 0 ? CHECK_FIELDS : error.message, fields };
}

const CHECK_FIELDS = 'Check the highlighted fields and try again.';

/** Client-side checks use the same shape, so the page shows them the same way. */
export function fieldErrors(fields: Record<string, string | null | undefined>): FormErrors {
  const present: Record<string, string> = {};
  for (const [name, message] of Object.entries(fields)) if (message) present[name] = message;
  return Object.keys(present).length === 0 ? NO_ERRORS : { summary: CHECK_FIELDS, fields: present };
}

export function hasErrors(errors: FormErrors): boolean {
  return errors.summary !== null || Object.keys(errors.fields).length > 0;
}
