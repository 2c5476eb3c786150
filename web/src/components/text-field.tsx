import { useEffect, useRef, useState } from 'react';
import type { InputHTMLAttributes, ReactNode, SelectHTMLAttributes, TextareaHTMLAttributes } from 'react';

interface FieldFrameProps {
  id: string;
  label: string;
  hint?: ReactNode;
  error?: string | undefined;
  children: (describedBy: string | undefined) => ReactNode;
}

/** Label, hint and error for one control; the hint and error are its accessible description. */
function FieldFrame({ id, label, hint, error, children }: FieldFrameProps) {
  const hintId = hint ? `${id}-hint` : undefined;
  const errorId = error ? `${id}-error` : undefined;
  const describedBy = [hintId, errorId].filter(Boolean).join(' ') || undefined;
  return (
    <div className={error ? 'field field--error' : 'field'}>
      <label className="field__label" htmlFor={id}>
        {label}
      </label>
      {hint ? (
        <p className="field__hint" id={hintId}>
          {hint}
        </p>
      ) : null}
      {error ? (
        <p className="field__error" id={errorId}>
          <span className="visually-hidden">Error: </span>
          {error}
        </p>
      ) : null}
      {children(describedBy)}
    </div>
  );
}

type InputProps = Omit<InputHTMLAttributes<HTMLInputElement>, 'id' | 'aria-describedby' | 'aria-invalid'>;

export interface TextFieldProps extends InputProps {
  id: string;
  label: string;
  hint?: ReactNode;
  error?: string | undefined;
}

export function TextField({ id, label, hint, error, className, ...input }: TextFieldProps) {
  return (
    <FieldFrame id={id} label={label} hint={hint} error={error}>
      {(describedBy) => (
        <input
          id={id}
          className={className ? `input ${className}` : 'input'}
          aria-describedby={describedBy}
          aria-invalid={error ? true : undefined}
          {...input}
        />
      )}
    </FieldFrame>
  );
}

type SelectProps = Omit<SelectHTMLAttributes<HTMLSelectElement>, 'id' | 'aria-describedby' | 'aria-invalid'>;

export interface SelectFieldProps extends SelectProps {
  id: string;
  label: string;
  hint?: ReactNode;
  error?: string | undefined;
  children: ReactNode;
}

export function SelectField({ id, label, hint, error, children, ...select }: SelectFieldProps) {
  return (
    <FieldFrame id={id} label={label} hint={hint} error={error}>
      {(describedBy) => (
        <select
          id={id}
          className="select"
          aria-describedby={describedBy}
          aria-invalid={error ? true : undefined}
          {...select}
        >
          {children}
        </select>
      )}
    </FieldFrame>
  );
}

type TextareaProps = Omit<
  TextareaHTMLAttributes<HTMLTextAreaElement>,
  'id' | 'aria-describedby' | 'aria-invalid' | 'value' | 'maxLength'
>;

export interface TextareaFieldProps extends TextareaProps {
  id: string;
  label: string;
  hint?: ReactNode;
  error?: string | undefined;
  value: string;
  /** The most characters allowed; a count of what is left is shown under the box. */
  maxChars: number;
}

function remainingText(remaining: number): string {
  if (remaining >= 0) return `You have ${remaining} character${remaining === 1 ? '' : 's'} remaining`;
  const over = -remaining;
  return `You have ${over} character${over === 1 ? '' : 's'} too many`;
}

/**
 * A textarea with a character count, after the GOV.UK pattern: no hard `maxlength` (a pasted text
 * can be trimmed rather than cut off silently), the count is visible, and screen readers hear it
 * once typing pauses rather than on every key.
 */
export function TextareaField({ id, label, hint, error, value, maxChars, className, ...textarea }: TextareaFieldProps) {
  const remaining = maxChars - value.length;
  const [announced, setAnnounced] = useState('');
  const first = useRef(true);
  useEffect(() => {
    if (first.current) {
      first.current = false;
      return;
    }
    const timer = setTimeout(() => setAnnounced(remainingText(remaining)), 1000);
    return () => clearTimeout(timer);
  }, [remaining]);
  const limitId = `${id}-limit`;

  return (
    <FieldFrame id={id} label={label} hint={hint} error={error}>
      {(describedBy) => (
        <>
          <textarea
            id={id}
            className={className ? `textarea ${className}` : 'textarea'}
            aria-describedby={[describedBy, limitId].filter(Boolean).join(' ')}
            aria-invalid={error || remaining < 0 ? true : undefined}
            value={value}
            {...textarea}
          />
          <p id={limitId} className="visually-hidden">
            You can enter up to {maxChars} characters
          </p>
          <p className={remaining < 0 ? 'character-count character-count--over' : 'character-count'} aria-hidden="true">
            {remainingText(remaining)}
          </p>
          <p className="visually-hidden" aria-live="polite">
            {announced}
          </p>
        </>
      )}
    </FieldFrame>
  );
}

export interface RadioOption {
  value: string;
  label: string;
  hint?: string;
}

export interface RadiosFieldProps {
  /** The id of the first radio (an error summary links to it); the others get `${id}-${value}`. */
  id: string;
  name: string;
  legend: string;
  hint?: ReactNode;
  error?: string | undefined;
  options: RadioOption[];
  value: string;
  onChange: (value: string) => void;
  inline?: boolean;
}

export function RadiosField({ id, name, legend, hint, error, options, value, onChange, inline }: RadiosFieldProps) {
  const hintId = hint ? `${id}-hint` : undefined;
  const errorId = error ? `${id}-error` : undefined;
  const describedBy = [hintId, errorId].filter(Boolean).join(' ') || undefined;
  return (
    <div className={error ? 'field field--error' : 'field'}>
      <fieldset className="fieldset" aria-describedby={describedBy}>
        <legend className="field__label">{legend}</legend>
        {hint ? (
          <p className="field__hint" id={hintId}>
            {hint}
          </p>
        ) : null}
        {error ? (
          <p className="field__error" id={errorId}>
            <span className="visually-hidden">Error: </span>
            {error}
          </p>
        ) : null}
        <div className={inline ? 'radios radios--inline' : 'radios'}>
          {options.map((option, index) => {
            const optionId = index === 0 ? id : `${id}-${option.value}`;
            const optionHintId = option.hint ? `${optionId}-hint` : undefined;
            return (
              <div className="radios__item" key={option.value}>
                <input
                  className="radios__input"
                  type="radio"
                  id={optionId}
                  name={name}
                  value={option.value}
                  checked={value === option.value}
                  onChange={() => onChange(option.value)}
                  aria-describedby={optionHintId}
                />
                <label className="radios__label" htmlFor={optionId}>
                  {option.label}
                </label>
                {option.hint ? (
                  <p className="radios__hint" id={optionHintId}>
                    {option.hint}
                  </p>
                ) : null}
              </div>
            );
          })}
        </div>
      </fieldset>
    </div>
  );
}
