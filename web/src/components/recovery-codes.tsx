import { useEffect, useRef, useState } from 'react';

interface RecoveryCodesProps {
  codes: string[];
  onSaved: () => void;
}

/** Shown exactly once, straight after MFA is confirmed: the server keeps only their hashes. */
export function RecoveryCodes({ codes, onSaved }: RecoveryCodesProps) {
  const headingRef = useRef<HTMLHeadingElement>(null);
  const [copied, setCopied] = useState<'yes' | 'failed' | null>(null);

  useEffect(() => headingRef.current?.focus(), []);

  async function copy() {
    try {
      await navigator.clipboard.writeText(codes.join('\n'));
      setCopied('yes');
    } catch {
      setCopied('failed');
    }
  }

  return (
    <section className="panel panel--warning" aria-labelledby="recovery-codes-heading">
      <h2 id="recovery-codes-heading" tabIndex={-1} ref={headingRef}>
        Save your recovery codes now
      </h2>
      <p>
        If you lose the phone or app that makes your codes, you can sign in with one of these instead. Each
        code works once. <strong>You will not be shown them again.</strong> Keep them somewhere safe, such as a
        password manager, and do not share them.
      </p>
      <ol className="recovery-codes" data-testid="recovery-codes">
        {codes.map((code) => (
          <li key={code}>
            <code>{code}</code>
          </li>
        ))}
      </ol>
      <div className="button-row">
        {typeof navigator !== 'undefined' && navigator.clipboard ? (
          <button type="button" className="button button--secondary" onClick={copy}>
            Copy codes
          </button>
        ) : null}
        <button type="button" className="button" onClick={onSaved}>
          I have saved them
        </button>
      </div>
      <p role="status" className="muted">
        {copied === 'yes' ? 'Codes copied.' : null}
        {copied === 'failed' ? 'Could not copy. Select the codes and copy them yourself.' : null}
      </p>
    </section>
  );
}
