-- Foundation: accounts, patient profiles, sessions, MFA, the audit log.
-- {{service_role}} is the role the service runs as; it owns nothing and cannot bypass RLS.

do $$
begin
  if not exists (select 1 from pg_roles where rolname = '{{service_role}}') then
    create role {{service_role}} nologin nosuperuser nobypassrls;
  end if;
end $$;

-- The principal of the current transaction, set by the scope factory with set_config(..., true).
-- current_setting(name, true) returns '' once a transaction has ended, hence NULLIF.
create function confidant_principal_kind() returns text
  language sql stable parallel safe
  as $$ select nullif(current_setting('confidant.principal_kind', true), '') $$;

create function confidant_principal_id() returns uuid
  language sql stable parallel safe
  as $$ select nullif(current_setting('confidant.principal_id', true), '')::uuid $$;

create function confidant_principal_role() returns text
  language sql stable parallel safe
  as $$ select nullif(current_setting('confidant.principal_role', true), '') $$;

create function confidant_is_system() returns boolean
  language sql stable parallel safe
  as $$ select coalesce(nullif(current_setting('confidant.principal_kind', true), '') = 'system', false) $$;

create table accounts (
  id uuid primary key,
  kind text not null check (kind in ('patient', 'clinician', 'staff')),
  staff_role text check (staff_role in ('dpo', 'admin')),
  email text not null check (email = lower(email) and length(email) <= 254),
  display_name text not null check (length(display_name) between 1 and 200),
  mfa_enabled_at timestamptz,
  mfa_required boolean not null default false,
  created_at timestamptz not null default now(),
  disabled_at timestamptz,
  check ((kind = 'staff') = (staff_role is not null))
);
create unique index accounts_email_key on accounts (email);

-- Secrets live apart from the account so that no directory query can ever select them.
create table account_credentials (
  account_id uuid primary key references accounts (id),
  password_hash text not null,
  password_changed_at timestamptz not null default now(),
  mfa_secret text,
  mfa_pending_secret text,
  mfa_last_step bigint
);

create table patient_profiles (
  account_id uuid primary key references accounts (id),
  given_name text not null check (length(given_name) between 1 and 100),
  family_name text not null check (length(family_name) between 1 and 100),
  date_of_birth date not null,
  nhs_number text check (nhs_number ~ '^[0-9]{10}$'),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
create unique index patient_profiles_nhs_number_key on patient_profiles (nhs_number) where nhs_number is not null;

create table mfa_recovery_codes (
  id uuid primary key default gen_random_uuid(),
  account_id uuid not null references accounts (id),
  code_hash text not null,
  used_at timestamptz
);
create index mfa_recovery_codes_account_idx on mfa_recovery_codes (account_id);

create table sessions (
  id uuid primary key default gen_random_uuid(),
  token_hash bytea not null unique,
  account_id uuid not null references accounts (id),
  stage text not null check (stage in ('full', 'mfa', 'enrol')),
  created_at timestamptz not null default now(),
  last_seen_at timestamptz not null default now(),
  absolute_expires_at timestamptz not null,
  revoked_at timestamptz,
  revoked_reason text,
  client_ip text,
  user_agent text
);
create index sessions_account_idx on sessions (account_id) where revoked_at is null;

-- Throttling keys are hashes of an email or a client address: nothing here identifies anyone.
create table sign_in_failures (
  key_hash bytea not null,
  failed_at timestamptz not null default now()
);
create index sign_in_failures_key_idx on sign_in_failures (key_hash, failed_at);

-- Row-level security: a principal sees its own rows; system work sees all (and is audited).
alter table accounts enable row level security;
alter table accounts force row level security;
create policy accounts_self on accounts
  using (id = confidant_principal_id() or confidant_is_system())
  with check (id = confidant_principal_id() or confidant_is_system());
-- Staff and clinicians see who else works here (never patients' accounts).
create policy accounts_staff_directory on accounts for select
  using (kind <> 'patient' and confidant_principal_kind() in ('clinician', 'staff'));

alter table account_credentials enable row level security;
alter table account_credentials force row level security;
create policy account_credentials_self on account_credentials
  using (account_id = confidant_principal_id() or confidant_is_system())
  with check (account_id = confidant_principal_id() or confidant_is_system());

alter table patient_profiles enable row level security;
alter table patient_profiles force row level security;
create policy patient_profiles_self on patient_profiles
  using (account_id = confidant_principal_id() or confidant_is_system())
  with check (account_id = confidant_principal_id() or confidant_is_system());

alter table mfa_recovery_codes enable row level security;
alter table mfa_recovery_codes force row level security;
create policy mfa_recovery_codes_self on mfa_recovery_codes
  using (account_id = confidant_principal_id() or confidant_is_system())
  with check (account_id = confidant_principal_id() or confidant_is_system());

alter table sessions enable row level security;
alter table sessions force row level security;
create policy sessions_self on sessions
  using (account_id = confidant_principal_id() or confidant_is_system())
  with check (account_id = confidant_principal_id() or confidant_is_system());

-- Resolving a session cookie needs no principal yet: this function answers only for the holder
-- of the token (by its hash), so the service role never reads other people's sessions.
-- It runs as the owner; the policies below let the owner (and only it) see these rows.
do $$
begin
  execute format('create policy sessions_owner_functions on sessions to %I using (true) with check (true)', current_user);
  execute format('create policy accounts_owner_functions on accounts to %I using (true)', current_user);
end $$;

create function confidant_resolve_session(p_token_hash bytea, p_idle_seconds integer)
  returns table (session_id uuid, account_id uuid, kind text, staff_role text, stage text,
                 display_name text, absolute_expires_at timestamptz)
  language sql volatile security definer
  set search_path = pg_catalog, public
  as $$
    update sessions s set last_seen_at = now()
    from accounts a
    where s.token_hash = p_token_hash
      and a.id = s.account_id
      and s.revoked_at is null
      and s.absolute_expires_at > now()
      and s.last_seen_at > now() - make_interval(secs => p_idle_seconds)
      and a.disabled_at is null
    returning s.id, s.account_id, a.kind, a.staff_role, s.stage, a.display_name, s.absolute_expires_at
  $$;
revoke all on function confidant_resolve_session(bytea, integer) from public;
grant execute on function confidant_resolve_session(bytea, integer) to {{service_role}};

-- Audit log: append-only and hash-chained.
create table audit_chain_head (
  singleton boolean primary key default true check (singleton),
  seq bigint not null,
  hash bytea not null
);
insert into audit_chain_head (seq, hash) values (0, sha256(convert_to('confidant audit genesis', 'UTF8')));

create table audit_events (
  seq bigint primary key,
  id uuid not null default gen_random_uuid() unique,
  occurred_at timestamptz not null,
  actor_kind text not null check (actor_kind in ('anonymous', 'patient', 'clinician', 'staff', 'system')),
  actor_id uuid,
  actor_role text,
  session_id uuid,
  system_reason text,
  action text not null,
  object_type text,
  object_id text,
  patient_id uuid,
  outcome text not null check (outcome in ('success', 'denied', 'failure')),
  client_ip text,
  user_agent text,
  request_id text,
  details text,
  prev_hash bytea not null,
  hash bytea not null
);
create index audit_events_patient_idx on audit_events (patient_id, seq) where patient_id is not null;
create index audit_events_actor_idx on audit_events (actor_id, seq) where actor_id is not null;

-- The canonical text of an event that its hash covers. `confidant audit verify` recomputes
-- it independently in TypeScript (src/audit/verify.ts); the two must agree.
create function confidant_audit_field(v text) returns text
  language sql immutable parallel safe
  as $$ select case when v is null then '~' else octet_length(v)::text || ':' || v end $$;

create function confidant_audit_canonical(e audit_events) returns text
  language sql immutable parallel safe
  as $$
    select concat_ws('|',
      confidant_audit_field(e.seq::text),
      confidant_audit_field(e.id::text),
      confidant_audit_field(((extract(epoch from e.occurred_at) * 1000)::bigint)::text),
      confidant_audit_field(e.actor_kind),
      confidant_audit_field(e.actor_id::text),
      confidant_audit_field(e.actor_role),
      confidant_audit_field(e.session_id::text),
      confidant_audit_field(e.system_reason),
      confidant_audit_field(e.action),
      confidant_audit_field(e.object_type),
      confidant_audit_field(e.object_id),
      confidant_audit_field(e.patient_id::text),
      confidant_audit_field(e.outcome),
      confidant_audit_field(e.client_ip),
      confidant_audit_field(e.user_agent),
      confidant_audit_field(e.request_id),
      confidant_audit_field(e.details))
  $$;

-- Runs with the owner's rights so that the service role needs no access to the chain head.
create function confidant_audit_chain() returns trigger
  language plpgsql security definer
  set search_path = pg_catalog, public
  as $$
  declare
    head record;
  begin
    update audit_chain_head set seq = seq + 1 returning seq, hash into head;
    new.seq := head.seq;
    new.occurred_at := date_trunc('milliseconds', clock_timestamp());
    new.prev_hash := head.hash;
    new.hash := sha256(head.hash || convert_to(confidant_audit_canonical(new), 'UTF8'));
    update audit_chain_head set hash = new.hash;
    return new;
  end
  $$;

create trigger audit_events_chain before insert on audit_events
  for each row execute function confidant_audit_chain();

create function confidant_audit_immutable() returns trigger
  language plpgsql
  as $$ begin raise exception 'audit_events is append-only'; end $$;

create trigger audit_events_no_update before update or delete on audit_events
  for each row execute function confidant_audit_immutable();
create trigger audit_events_no_truncate before truncate on audit_events
  for each statement execute function confidant_audit_immutable();

-- Lets `confidant audit verify` compare the log's tail with the head, so a removed tail shows.
create function confidant_audit_head() returns table (seq bigint, hash bytea)
  language sql stable security definer
  set search_path = pg_catalog, public
  as $$ select seq, hash from audit_chain_head $$;
revoke all on function confidant_audit_head() from public;
grant execute on function confidant_audit_head() to {{service_role}};

alter table audit_events enable row level security;
alter table audit_events force row level security;
create policy audit_events_read on audit_events for select
  using (confidant_is_system() or (confidant_principal_kind() = 'staff' and confidant_principal_role() = 'dpo'));
create policy audit_events_append on audit_events for insert
  with check (
    confidant_is_system()
    or (actor_id is not null and actor_id = confidant_principal_id())
    or (actor_id is null and actor_kind = 'anonymous' and confidant_principal_kind() = 'anonymous')
  );

-- The service role: data access only, never DDL, never the chain head, audit append-only.
revoke all on audit_chain_head from public;
grant select, insert, update on accounts, account_credentials, patient_profiles, sessions to {{service_role}};
grant select, insert, update, delete on mfa_recovery_codes to {{service_role}};
grant select, insert, delete on sign_in_failures to {{service_role}};
grant select, insert on audit_events to {{service_role}};
