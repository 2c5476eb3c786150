import { useEffect, useRef } from 'react';
import type { FormErrors } from './form-errors';

interface ErrorSummaryProps {
  errors: FormErrors;
  /** The id of the control for a field name, so each message links to its field. */
  idFor: (field: string) => string;
}

/** The problems with a form, at its top: announced, focused, each linked to its field. */
export function ErrorSummary({ errors, idFor }: ErrorSummaryProps) {
  const ref = useRef<HTMLDivElement>(null);
  const visible = errors.summary !== null || Object.keys(errors.fields).length > 0;

  useEffect(() => {
    if (visible) ref.current?.focus();
  }, [errors, visible]);

  if (!visible) return null;
  const fieldMessages = Object.entries(errors.fields).filter(([, message]) => message !== errors.summary);

  return (
    <div className="error-summary" role="alert" tabIndex={-1} ref={ref}>
      <h2 className="error-summary__title">
        {errors.summary ?? 'There is a problem'}
      </h2>
      {fieldMessages.length > 0 ? (
        <ul className="error-summary__list">
          {fieldMessages.map(([field, message]) => (
            <li key={field}>
              <a
                href={`#${idFor(field)}`}
                onClick={(event) => {
                  event.preventDefault();
                  document.getElementById(idFor(field))?.focus();
                }}
              >
                {message}
              </a>
            </li>
          ))}
        </ul>
      ) : null}
    </div>
  );
}
