import { useEffect, useRef, useState } from 'react';
import type { FormEvent } from 'react';
import { errorMessage, searchAuditEvents, verifyAuditChain } from '../api';
import type { AuditEvent, AuditEventQuery, AuditOutcome, AuditVerification } from '../api-types';
import { ErrorSummary } from '../components/error-summary';
import { NO_ERRORS, fieldErrors, formErrorsFrom } from '../components/form-errors';
import type { FormErrors } from '../components/form-errors';
import { Loading } from '../components/loading';
import { LocalTime } from '../components/local-time';
import { usePageTitle } from '../components/page-title';
import { StaffList } from '../components/staff-list';
import { SelectField, TextField } from '../components/text-field';
import { formatDuration, roleLabel } from '../format';
import { useSignedIn } from '../session';
import { AlertsSection, DrillSection, OffFeaturesSection, useFocusOn } from './dpo-breach-guard';

const PAGE_SIZE = 50;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const FILTER_FIELDS = ['action', 'outcome', 'patientId', 'actorId', 'upToSeq'] as const;
const idFor = (field: string) => `audit-${field}`;
const plural = (count: number, noun: string) => `${count} ${noun}${count === 1 ? '' : 's'}`;

interface Filters {
  action: string;
  outcome: '' | AuditOutcome;
  patientId: string;
  actorId: string;
  /** The newest event to show (its sequence number): an alert's event, and the older ones. */
  upToSeq: string;
}
const NO_FILTERS: Filters = { action: '', outcome: '', patientId: '', actorId: '', upToSeq: '' };

function toQuery(filters: Filters): AuditEventQuery {
  const query: AuditEventQuery = { limit: PAGE_SIZE };
  if (filters.action.trim()) query.action = filters.action.trim();
  if (filters.outcome) query.outcome = filters.outcome;
  if (filters.patientId.trim()) query.patientId = filters.patientId.trim().toLowerCase();
  if (filters.actorId.trim()) query.actorId = filters.actorId.trim().toLowerCase();
  if (filters.upToSeq.trim()) query.beforeSeq = Number(filters.upToSeq.trim()) + 1;
  return query;
}

function checkFilters(filters: Filters): FormErrors {
  const uuidProblem = (value: string, what: string) =>
    value.trim() && !UUID.test(value.trim())
      ? `${what} must be a full ID, like 3f2b8c1e-0d4a-4e6b-9c57-1a2b3c4d5e6f.`
      : null;
  return fieldErrors({
    patientId: uuidProblem(filters.patientId, 'Patient ID'),
    actorId: uuidProblem(filters.actorId, 'Actor ID'),
    upToSeq:
      filters.upToSeq.trim() && !/^[1-9]\d{0,14}$/.test(filters.upToSeq.trim())
        ? 'Up to event must be an event number, like 1234.'
        : null,
  });
}

function OutcomeTag({ outcome }: { outcome: AuditOutcome }) {
  const tone = outcome === 'success' ? 'green' : outcome === 'denied' ? 'amber' : 'red';
  const label = outcome === 'success' ? 'Success' : outcome === 'denied' ? 'Denied' : 'Failure';
  return <span className={`tag tag--${tone}`}>{label}</span>;
}

function Id({ value }: { value: string | null }) {
  return value ? <code className="id">{value}</code> : <span className="muted">–</span>;
}

function Actor({ event }: { event: AuditEvent }) {
  if (event.actorKind === 'system') {
    return (
      <>
        System<span className="muted">{event.systemReason ? `: ${event.systemReason}` : ''}</span>
      </>
    );
  }
  return (
    <>
      {roleLabel(event.actorRole, event.actorKind)}
      {event.actorId ? (
        <>
          <br />
          <Id value={event.actorId} />
        </>
      ) : null}
    </>
  );
}

/**
 * What an event recorded besides who and what. A replay's part is said in the recording's time
 * (which seconds were played, or received before the viewer left) and in bytes; anything else as
 * its fields.
 */
function EventDetails({ details }: { details: AuditEvent['details'] }) {
  if (!details || Object.keys(details).length === 0) return <span className="muted">–</span>;
  const { fromMs, toMs, bytes, range, ...rest } = details;
  const parts: string[] = [];
  if (typeof fromMs === 'number' && typeof toMs === 'number') parts.push(`${formatDuration(fromMs)}–${formatDuration(toMs)}`);
  if (typeof bytes === 'number') parts.push(`${bytes.toLocaleString()} bytes${typeof range === 'string' && range !== 'none' ? ` (${range})` : ''}`);
  else if (range !== undefined) rest.range = range;
  for (const [key, value] of Object.entries(rest)) parts.push(`${key}: ${Array.isArray(value) ? value.join(', ') : String(value)}`);
  return <span className="event-details">{parts.join('; ')}</span>;
}

function AuditTable({ events }: { events: AuditEvent[] }) {
  return (
    <div className="table-scroll" role="region" aria-label="Audit events" tabIndex={0}>
      <table className="table table--compact table--cards">
        <caption className="visually-hidden">Audit events, newest first</caption>
        <thead>
          <tr>
            <th scope="col">Seq</th>
            <th scope="col">Time</th>
            <th scope="col">Action</th>
            <th scope="col">Outcome</th>
            <th scope="col">Actor</th>
            <th scope="col">Object</th>
            <th scope="col">Patient</th>
            <th scope="col">Details</th>
            <th scope="col">Client IP</th>
            <th scope="col">Request</th>
          </tr>
        </thead>
        <tbody>
          {events.map((event) => (
            <tr key={event.id}>
              <th scope="row" className="numeric" data-label="Seq">
                {event.seq}
              </th>
              <td className="nowrap" data-label="Time">
                <LocalTime iso={event.occurredAt} />
              </td>
              <td data-label="Action">
                <code>{event.action}</code>
              </td>
              <td data-label="Outcome">
                <OutcomeTag outcome={event.outcome} />
              </td>
              <td data-label="Actor">
                <Actor event={event} />
              </td>
              <td data-label="Object">
                {event.objectType ?? <span className="muted">–</span>}
                {event.objectId ? (
                  <>
                    <br />
                    <Id value={event.objectId} />
                  </>
                ) : null}
              </td>
              <td data-label="Patient">
                <Id value={event.patientId} />
              </td>
              <td data-label="Details">
                <EventDetails details={event.details} />
              </td>
              <td data-label="Client IP">{event.clientIp ?? <span className="muted">–</span>}</td>
              <td data-label="Request">
                <Id value={event.requestId} />
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

type Trail =
  | { status: 'loading' }
  | { status: 'error'; message: string }
  | {
      status: 'ok';
      events: AuditEvent[];
      nextBeforeSeq: number | null;
      loadingOlder: boolean;
      olderError: string | null;
    };

/** A request to show one event (by its sequence number) at the top of the trail; `n` tells repeats apart. */
interface EventLookup {
  seq: number;
  n: number;
}

function AuditTrail({ lookup }: { lookup: EventLookup | null }) {
  const [draft, setDraft] = useState<Filters>(NO_FILTERS);
  const [applied, setApplied] = useState<Filters>(NO_FILTERS);
  const [errors, setErrors] = useState<FormErrors>(NO_ERRORS);
  const [trail, setTrail] = useState<Trail>({ status: 'loading' });
  // Only the newest search may write the table; an older answer arriving late is dropped.
  const generation = useRef(0);

  useEffect(() => {
    const mine = ++generation.current;
    setTrail({ status: 'loading' });
    searchAuditEvents(toQuery(applied)).then(
      (page) => {
        if (mine !== generation.current) return;
        setTrail({ status: 'ok', ...page, loadingOlder: false, olderError: null });
      },
      (error: unknown) => {
        if (mine !== generation.current) return;
        setErrors(formErrorsFrom(error, FILTER_FIELDS));
        setTrail({ status: 'error', message: errorMessage(error) });
      },
    );
  }, [applied]);

  // An alert's event number was chosen: show it first, with everything older after it.
  useEffect(() => {
    if (!lookup) return;
    const filters = { ...NO_FILTERS, upToSeq: String(lookup.seq) };
    setDraft(filters);
    setErrors(NO_ERRORS);
    setApplied(filters);
  }, [lookup]);

  function search(event: FormEvent) {
    event.preventDefault();
    const problems = checkFilters(draft);
    setErrors(problems);
    if (problems.summary) return;
    setApplied({ ...draft });
  }

  function clear() {
    setDraft(NO_FILTERS);
    setErrors(NO_ERRORS);
    setApplied(NO_FILTERS);
  }

  async function loadOlder() {
    if (trail.status !== 'ok' || trail.nextBeforeSeq === null) return;
    const mine = generation.current;
    setTrail({ ...trail, loadingOlder: true, olderError: null });
    try {
      const page = await searchAuditEvents({ ...toQuery(applied), beforeSeq: trail.nextBeforeSeq });
      if (mine !== generation.current) return;
      setTrail((t) =>
        t.status === 'ok'
          ? { ...t, events: [...t.events, ...page.events], nextBeforeSeq: page.nextBeforeSeq, loadingOlder: false }
          : t,
      );
    } catch (error) {
      if (mine !== generation.current) return;
      setTrail((t) => (t.status === 'ok' ? { ...t, loadingOlder: false, olderError: errorMessage(error) } : t));
    }
  }

  const set = (field: keyof Filters) => (event: { target: { value: string } }) =>
    setDraft((d) => ({ ...d, [field]: event.target.value }));

  return (
    <section aria-labelledby="events-heading">
      <h2 id="events-heading" tabIndex={-1}>
        Events
      </h2>
      <form className="filters" onSubmit={search} noValidate aria-label="Filter audit events">
        <ErrorSummary errors={errors} idFor={idFor} />
        <div className="filters__grid">
          <TextField
            id={idFor('action')}
            label="Action"
            hint="For example profile.read"
            spellCheck={false}
            autoCapitalize="none"
            value={draft.action}
            onChange={set('action')}
            error={errors.fields.action}
          />
          <SelectField
            id={idFor('outcome')}
            label="Outcome"
            value={draft.outcome}
            onChange={set('outcome')}
            error={errors.fields.outcome}
          >
            <option value="">Any outcome</option>
            <option value="success">Success</option>
            <option value="denied">Denied</option>
            <option value="failure">Failure</option>
          </SelectField>
          <TextField
            id={idFor('patientId')}
            label="Patient ID"
            spellCheck={false}
            autoCapitalize="none"
            autoComplete="off"
            value={draft.patientId}
            onChange={set('patientId')}
            error={errors.fields.patientId}
            className="input--id"
          />
          <TextField
            id={idFor('actorId')}
            label="Actor ID"
            spellCheck={false}
            autoCapitalize="none"
            autoComplete="off"
            value={draft.actorId}
            onChange={set('actorId')}
            error={errors.fields.actorId}
            className="input--id"
          />
          <TextField
            id={idFor('upToSeq')}
            label="Up to event"
            hint="An event number: shows it and older events"
            inputMode="numeric"
            autoComplete="off"
            value={draft.upToSeq}
            onChange={set('upToSeq')}
            error={errors.fields.upToSeq}
          />
        </div>
        <div className="button-row">
          <button type="submit" className="button">
            Search
          </button>
          <button type="button" className="button button--secondary" onClick={clear}>
            Clear filters
          </button>
        </div>
      </form>

      {trail.status === 'loading' ? <Loading label="Loading audit events…" /> : null}
      {trail.status === 'error' ? (
        <div className="notice notice--error" role="alert">
          <p>{trail.message}</p>
        </div>
      ) : null}
      {trail.status === 'ok' ? (
        <>
          <p role="status" className="status-line">
            {trail.events.length === 0
              ? 'No audit events match these filters.'
              : `Showing ${plural(trail.events.length, 'event')}, newest first.`}
          </p>
          {trail.events.length > 0 ? <AuditTable events={trail.events} /> : null}
          {trail.olderError ? (
            <p className="notice notice--error" role="alert">
              {trail.olderError}
            </p>
          ) : null}
          {trail.nextBeforeSeq !== null ? (
            <button
              type="button"
              className="button button--secondary"
              onClick={loadOlder}
              disabled={trail.loadingOlder}
            >
              Load older
            </button>
          ) : trail.events.length > 0 ? (
            <p className="muted">This is the start of the audit trail for these filters.</p>
          ) : null}
        </>
      ) : null}
    </section>
  );
}

type Check =
  | { status: 'idle' }
  | { status: 'checking' }
  | { status: 'done'; result: AuditVerification }
  | { status: 'error'; message: string };

function VerifyChain() {
  const [check, setCheck] = useState<Check>({ status: 'idle' });

  async function verify() {
    setCheck({ status: 'checking' });
    try {
      setCheck({ status: 'done', result: await verifyAuditChain() });
    } catch (error) {
      setCheck({ status: 'error', message: errorMessage(error) });
    }
  }

  return (
    <section className="panel verify-chain" aria-labelledby="verify-heading">
      <h2 id="verify-heading">Audit chain</h2>
      <p>
        Each audit event is hash-chained to the one before. Verifying re-computes the chain and reports the first
        event that does not match.
      </p>
      <button
        type="button"
        className="button button--secondary"
        onClick={verify}
        disabled={check.status === 'checking'}
      >
        Verify audit chain
      </button>
      <div aria-live="polite" data-testid="audit-verify-result">
        {check.status === 'checking' ? <Loading label="Verifying the audit chain…" /> : null}
        {check.status === 'error' ? (
          <div className="notice notice--error" role="alert">
            <p>{check.message}</p>
          </div>
        ) : null}
        {check.status === 'done' && check.result.ok ? (
          <div className="notice notice--success">
            <p>
              <strong>Audit chain intact.</strong> {plural(check.result.checked, 'event')} checked, up to event{' '}
              {check.result.headSeq}.
            </p>
          </div>
        ) : null}
        {check.status === 'done' && !check.result.ok ? (
          <div className="notice notice--error" role="alert">
            <p>
              <strong>Audit chain broken</strong>
              {check.result.firstBad ? (
                <>
                  {' '}
                  at event {check.result.firstBad.seq}: {check.result.firstBad.problem.replace(/\.$/, '')}.
                </>
              ) : (
                '.'
              )}
            </p>
            {check.result.firstBad ? (
              <p>
                Event ID <code className="id">{check.result.firstBad.id}</code>.{' '}
                {plural(check.result.checked, 'event')} checked. Treat this as a security incident.
              </p>
            ) : null}
          </div>
        ) : null}
      </div>
    </section>
  );
}

export function DpoHomePage() {
  usePageTitle('Audit trail');
  const session = useSignedIn();
  const [lookup, setLookup] = useState<EventLookup | null>(null);
  useFocusOn('events-heading', lookup);
  return (
    <div className="wide">
      <h1>Audit trail</h1>
      <p>
        The breach guard's alerts, what is switched off, and every read and change of patient data (and every refused
        attempt), newest first.
      </p>
      <AlertsSection onShowEvent={(seq) => setLookup((l) => ({ seq, n: (l?.n ?? 0) + 1 }))} />
      <OffFeaturesSection />
      <DrillSection />
      <VerifyChain />
      <AuditTrail lookup={lookup} />
      {/* A heading, not a second landmark: the table's own scroll region is already named "Staff". */}
      <h2 id="staff-heading">Staff</h2>
      <StaffList caption="Staff" selfId={session.account.id} />
    </div>
  );
}
