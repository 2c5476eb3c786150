-- Reliability: readiness compares the applied migrations with the code's, and retried writes are
-- answered from what their first attempt committed (Idempotency-Key).

-- Names and times only; readiness reads them to say whether the schema is the one this code expects.
grant select on confidant_migrations to {{service_role}};

-- One row per (caller, key), written in the same transaction as the change it answers for: the
-- row exists if and only if that change committed. A retry with the same key gets `response`
-- back instead of running again. The response is what the caller was shown (shaped by the
-- route's schema), so it holds patient data: only its own caller can read it.
create table idempotency_keys (
  principal_id uuid not null,
  key text not null check (length(key) between 1 and 100),
  -- The route pattern ("POST /api/appointments"), and a hash of the route, its parameters and
  -- body: the same key sent for something else is refused, never answered with the wrong outcome.
  route text not null,
  fingerprint bytea not null,
  status smallint,
  response jsonb,
  -- The patients the response concerns: the egress check runs again on a replayed answer.
  patient_ids uuid[] not null default '{}',
  created_at timestamptz not null default now(),
  primary key (principal_id, key)
);
create index idempotency_keys_created_at on idempotency_keys (created_at);

alter table idempotency_keys enable row level security;
alter table idempotency_keys force row level security;
create policy idempotency_keys_own on idempotency_keys
  using (principal_id = confidant_principal_id() and confidant_principal_kind() in ('patient', 'clinician', 'staff'))
  with check (principal_id = confidant_principal_id() and confidant_principal_kind() in ('patient', 'clinician', 'staff'));
-- Keys are kept for a day; a system job deletes older ones (and may see nothing younger).
create policy idempotency_keys_expire_read on idempotency_keys for select
  using (confidant_is_system() and created_at < now() - interval '24 hours');
create policy idempotency_keys_expire on idempotency_keys for delete
  using (confidant_is_system() and created_at < now() - interval '24 hours');

grant select, insert, update, delete on idempotency_keys to {{service_role}};

-- A full disk refuses every write, including the last-seen stamp that resolving a session writes
-- (confidant_resolve_session). Reads that need no write should still be served then, so the
-- session is looked up without the stamp: same answer, same conditions, for the token's holder only.
create function confidant_peek_session(p_token_hash bytea, p_idle_seconds integer)
  returns table (session_id uuid, account_id uuid, kind text, staff_role text, stage text,
                 display_name text, absolute_expires_at timestamptz)
  language sql stable security definer
  set search_path = pg_catalog, public
  as $$
    select s.id, s.account_id, a.kind, a.staff_role, s.stage, a.display_name, s.absolute_expires_at
    from sessions s join accounts a on a.id = s.account_id
    where s.token_hash = p_token_hash
      and s.revoked_at is null
      and s.absolute_expires_at > now()
      and s.last_seen_at > now() - make_interval(secs => p_idle_seconds)
      and a.disabled_at is null
  $$;
revoke all on function confidant_peek_session(bytea, integer) from public;
grant execute on function confidant_peek_session(bytea, integer) to {{service_role}};
