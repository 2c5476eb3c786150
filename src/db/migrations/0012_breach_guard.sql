-- Breach guard (issue 16): detection rules run over the audit chain, alerts for the DPO, a
-- minimal incident record, throttles on probing principals. Every table here holds identifiers
-- and codes only; the events themselves stay in audit_events.

-- Where detection has read the audit chain up to. One row; whichever process holds its row lock
-- (FOR UPDATE SKIP LOCKED) evaluates the next events, so each event is judged exactly once across
-- every process, and the cursor moves in the same transaction as what the rules did about them.
-- The chain is gapless and ordered by commit (its head's row lock is held to COMMIT), so an
-- event with a lower seq can never commit after one the cursor has passed.
create table guard_cursor (
  singleton boolean primary key default true check (singleton),
  last_seq bigint not null,
  moved_at timestamptz not null default now()
);
-- Starts at the chain's tail: detection judges what happens from now on, not years of history.
insert into guard_cursor (last_seq) select seq from audit_chain_head;

-- A minimal incident record, opened by a critical alert (issue 17 builds the register on it).
create table incidents (
  id uuid primary key default gen_random_uuid(),
  opened_at timestamptz not null default now(),
  opened_by text not null check (length(opened_by) between 1 and 200),
  status text not null default 'open' check (status in ('open', 'closed')),
  rule text not null,
  severity text not null check (severity in ('critical', 'high', 'medium')),
  feature text,
  -- The triggering audit events, by sequence number (the first 1000).
  event_seqs bigint[] not null,
  event_count integer not null check (event_count >= 1)
);

create table guard_alerts (
  id uuid primary key default gen_random_uuid(),
  raised_at timestamptz not null default now(),
  rule text not null check (rule in ('containment', 'integrity', 'probing', 'volume')),
  severity text not null check (severity in ('critical', 'high', 'medium')),
  feature text,
  action text not null check (action in ('feature_disabled', 'throttled', 'none')),
  summary text not null check (length(summary) between 1 and 500),
  event_seqs bigint[] not null,
  event_count integer not null check (event_count >= 1),
  -- When the last triggering event was added (an open alert gathers a burst's later events).
  last_event_at timestamptz not null default now(),
  actor_id uuid,
  incident_id uuid references incidents (id),
  acknowledged_at timestamptz,
  acknowledged_by uuid references accounts (id),
  acknowledged_by_label text,
  -- The optional paging webhook: delivered (or given up) by the process that raised it, retried by any.
  webhook_sent_at timestamptz,
  webhook_attempts integer not null default 0
);
create index guard_alerts_raised_idx on guard_alerts (raised_at desc);
create index guard_alerts_open_idx on guard_alerts (rule, feature, actor_id) where acknowledged_at is null;

-- A not-found answer on an id that exists and is someone else's: what the probing rule counts.
create table guard_probe_hits (
  actor_id uuid not null,
  at timestamptz not null,
  seq bigint not null primary key
);
create index guard_probe_hits_actor_idx on guard_probe_hits (actor_id, at);

-- A principal slowed down by the probing rule: every process refuses their requests with 429
-- until `until` (re-read on NOTIFY 'confidant_guard' and after any reconnect).
create table guard_throttles (
  actor_id uuid primary key,
  until timestamptz not null,
  alert_id uuid not null references guard_alerts (id),
  created_at timestamptz not null default now()
);

-- The alert email: the outbox row names the alert; the sender renders it (no clinical detail).
alter table outbox add column alert_id uuid references guard_alerts (id);

-- Row-level security: detection is system work; the DPO reads and acknowledges alerts.
alter table guard_cursor enable row level security;
alter table guard_cursor force row level security;
create policy guard_cursor_system on guard_cursor using (confidant_is_system()) with check (confidant_is_system());

alter table incidents enable row level security;
alter table incidents force row level security;
create policy incidents_system on incidents using (confidant_is_system()) with check (confidant_is_system());
create policy incidents_dpo_read on incidents for select
  using (confidant_principal_kind() = 'staff' and confidant_principal_role() = 'dpo');

alter table guard_alerts enable row level security;
alter table guard_alerts force row level security;
create policy guard_alerts_system on guard_alerts using (confidant_is_system()) with check (confidant_is_system());
create policy guard_alerts_dpo_read on guard_alerts for select
  using (confidant_principal_kind() = 'staff' and confidant_principal_role() = 'dpo');
create policy guard_alerts_dpo_ack on guard_alerts for update
  using (confidant_principal_kind() = 'staff' and confidant_principal_role() = 'dpo')
  with check (confidant_principal_kind() = 'staff' and confidant_principal_role() = 'dpo'
              and acknowledged_by = confidant_principal_id());

-- A DPO changes only the acknowledgement, once; what was seen and done stays as detection wrote it.
create function confidant_guard_alert_changes() returns trigger
  language plpgsql
  set search_path = pg_catalog, public, pg_temp
  as $$
  begin
    if confidant_is_system() then
      return new;
    end if;
    if old.acknowledged_at is not null
       or (new.event_seqs, new.event_count, new.last_event_at, new.webhook_sent_at, new.webhook_attempts)
          is distinct from (old.event_seqs, old.event_count, old.last_event_at, old.webhook_sent_at, old.webhook_attempts) then
      raise exception 'an alert is acknowledged once, and nothing else about it changes' using errcode = 'insufficient_privilege';
    end if;
    return new;
  end
  $$;
create trigger guard_alerts_changes before update on guard_alerts
  for each row execute function confidant_guard_alert_changes();

alter table guard_probe_hits enable row level security;
alter table guard_probe_hits force row level security;
create policy guard_probe_hits_system on guard_probe_hits using (confidant_is_system()) with check (confidant_is_system());

alter table guard_throttles enable row level security;
alter table guard_throttles force row level security;
create policy guard_throttles_system on guard_throttles using (confidant_is_system()) with check (confidant_is_system());

grant select, update on guard_cursor to {{service_role}};
grant select, insert, update on incidents to {{service_role}};
grant select, insert on guard_alerts to {{service_role}};
-- A DPO acknowledges; system work adds events to an open alert and records webhook delivery.
grant update (acknowledged_at, acknowledged_by, acknowledged_by_label, event_seqs, event_count, last_event_at,
              webhook_sent_at, webhook_attempts) on guard_alerts to {{service_role}};
grant select, insert, delete on guard_probe_hits to {{service_role}};
grant select, insert, update, delete on guard_throttles to {{service_role}};
