-- Consultations: the live call of an appointment, its audio/video switches, the patient's
-- recording consents, recordings uploaded in chunks, and the clinician's notes.
--
-- Ownership is decided here, at write time, by the database: every row below copies its
-- patient and clinician from its parent (consultation ← appointment, recording ← consultation)
-- in a BEFORE INSERT trigger, whatever the inserting code passed, and those columns can never
-- change afterwards. That is the failure of 2020 made impossible by construction: a recording
-- cannot be written under the wrong patient, because nobody gets to say whose it is.

create table consultations (
  id uuid primary key default gen_random_uuid(),
  appointment_id uuid not null unique references appointments (id),
  patient_id uuid not null references accounts (id),
  clinician_id uuid not null references accounts (id),
  booked_mode text not null check (booked_mode in ('audio', 'video')),
  mode text not null check (mode in ('audio', 'video')),
  status text not null default 'waiting' check (status in ('waiting', 'live', 'ended')),
  patient_joined_at timestamptz,
  started_at timestamptz,
  ended_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  check ((status = 'ended') = (ended_at is not null)),
  check (status = 'waiting' or started_at is not null)
);
create index consultations_patient_idx on consultations (patient_id, created_at desc);
create index consultations_clinician_idx on consultations (clinician_id, created_at desc);

-- A request to switch modes. Turning cameras on needs the other side's answer (and always the
-- patient's); turning them off never waits for anyone.
create table mode_switch_requests (
  id uuid primary key default gen_random_uuid(),
  consultation_id uuid not null references consultations (id),
  patient_id uuid not null references accounts (id),
  clinician_id uuid not null references accounts (id),
  requested_by uuid not null references accounts (id),
  to_mode text not null check (to_mode in ('audio', 'video')),
  status text not null default 'pending' check (status in ('pending', 'accepted', 'declined', 'withdrawn')),
  answered_by uuid references accounts (id),
  created_at timestamptz not null default now(),
  answered_at timestamptz,
  check ((status = 'pending') = (answered_at is null))
);
create unique index mode_switch_requests_one_pending on mode_switch_requests (consultation_id) where status = 'pending';

-- The patient's recording consents, one row per event, never updated: consent to record audio
-- is not consent to record video, so each is asked, given and withdrawn on its own.
create table recording_consents (
  id uuid primary key default gen_random_uuid(),
  consultation_id uuid not null references consultations (id),
  patient_id uuid not null references accounts (id),
  clinician_id uuid not null references accounts (id),
  media text not null check (media in ('audio', 'video')),
  decision text not null check (decision in ('requested', 'granted', 'declined', 'withdrawn')),
  actor_id uuid not null references accounts (id),
  created_at timestamptz not null default clock_timestamp()
);
create index recording_consents_consultation_idx on recording_consents (consultation_id, media, created_at desc);

create table recordings (
  id uuid primary key default gen_random_uuid(),
  consultation_id uuid not null references consultations (id),
  patient_id uuid not null references accounts (id),
  clinician_id uuid not null references accounts (id),
  status text not null default 'recording'
    check (status in ('recording', 'finalising', 'ready', 'failed')),
  media_type text not null check (media_type in ('video/webm', 'audio/webm')),
  -- The recording's data key, wrapped by the master key named by key_id.
  key_id text not null check (key_id ~ '^[0-9a-f]{16}$'),
  wrapped_key bytea not null,
  next_seq integer not null default 0 check (next_seq >= 0),
  received_bytes bigint not null default 0 check (received_bytes >= 0),
  -- Known once finalised.
  plaintext_size bigint check (plaintext_size >= 0),
  segment_size integer check (segment_size > 0),
  duration_ms integer check (duration_ms >= 0),
  -- Byte offset → time of each cluster, to say which seconds a byte range covers.
  time_index jsonb,
  video_consented boolean not null default false,
  failure_code text,
  started_at timestamptz not null default now(),
  last_chunk_at timestamptz,
  finalising_since timestamptz,
  finalised_at timestamptz,
  check (status <> 'ready' or (plaintext_size is not null and segment_size is not null and duration_ms is not null)),
  check ((status = 'finalising') = (finalising_since is not null))
);
-- One recording at a time per consultation.
create unique index recordings_one_open on recordings (consultation_id) where status = 'recording';
create index recordings_patient_idx on recordings (patient_id, started_at desc) where status = 'ready';
create index recordings_clinician_idx on recordings (clinician_id, started_at desc) where status = 'ready';
create index recordings_consultation_idx on recordings (consultation_id);
create index recordings_unfinished_idx on recordings (status) where status in ('recording', 'finalising');

create table recording_chunks (
  recording_id uuid not null references recordings (id),
  seq integer not null check (seq >= 0),
  patient_id uuid not null references accounts (id),
  clinician_id uuid not null references accounts (id),
  byte_length integer not null check (byte_length > 0),
  sha256 bytea not null check (length(sha256) = 32),
  received_at timestamptz not null default now(),
  primary key (recording_id, seq)
);

create table consultation_notes (
  consultation_id uuid primary key references consultations (id),
  patient_id uuid not null references accounts (id),
  clinician_id uuid not null references accounts (id),
  body text not null check (length(body) <= 20000),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);

-- Ownership, copied from the parent. These run with the caller's rights, so the parent must be
-- visible to the caller under row-level security; a parent that is not is "not found".
create function confidant_consultation_from_appointment() returns trigger
  language plpgsql
  set search_path = pg_catalog, public, pg_temp
  as $$
  declare
    a record;
  begin
    select ap.patient_id, ap.clinician_id, ap.mode into a from appointments ap where ap.id = new.appointment_id;
    if not found then
      raise exception 'appointment not found' using errcode = 'P0002';
    end if;
    new.patient_id := a.patient_id;
    new.clinician_id := a.clinician_id;
    new.booked_mode := a.mode;
    return new;
  end
  $$;
create trigger consultations_owner before insert on consultations
  for each row execute function confidant_consultation_from_appointment();

create function confidant_owner_from_consultation() returns trigger
  language plpgsql
  set search_path = pg_catalog, public, pg_temp
  as $$
  declare
    c record;
  begin
    select co.patient_id, co.clinician_id into c from consultations co where co.id = new.consultation_id;
    if not found then
      raise exception 'consultation not found' using errcode = 'P0002';
    end if;
    new.patient_id := c.patient_id;
    new.clinician_id := c.clinician_id;
    return new;
  end
  $$;
create trigger mode_switch_requests_owner before insert on mode_switch_requests
  for each row execute function confidant_owner_from_consultation();
create trigger recording_consents_owner before insert on recording_consents
  for each row execute function confidant_owner_from_consultation();
create trigger recordings_owner before insert on recordings
  for each row execute function confidant_owner_from_consultation();
create trigger consultation_notes_owner before insert on consultation_notes
  for each row execute function confidant_owner_from_consultation();

create function confidant_owner_from_recording() returns trigger
  language plpgsql
  set search_path = pg_catalog, public, pg_temp
  as $$
  declare
    r record;
  begin
    select re.patient_id, re.clinician_id into r from recordings re where re.id = new.recording_id;
    if not found then
      raise exception 'recording not found' using errcode = 'P0002';
    end if;
    new.patient_id := r.patient_id;
    new.clinician_id := r.clinician_id;
    return new;
  end
  $$;
create trigger recording_chunks_owner before insert on recording_chunks
  for each row execute function confidant_owner_from_recording();

-- Whose a row is never changes, and neither does what it belongs to.
create function confidant_owner_fixed() returns trigger
  language plpgsql
  set search_path = pg_catalog, public, pg_temp
  as $$
  begin
    if new.patient_id is distinct from old.patient_id or new.clinician_id is distinct from old.clinician_id then
      raise exception 'the patient and clinician of a % row cannot change', tg_table_name;
    end if;
    return new;
  end
  $$;
create trigger consultations_owner_fixed before update on consultations
  for each row execute function confidant_owner_fixed();
create trigger mode_switch_requests_owner_fixed before update on mode_switch_requests
  for each row execute function confidant_owner_fixed();
create trigger recordings_owner_fixed before update on recordings
  for each row execute function confidant_owner_fixed();
create trigger consultation_notes_owner_fixed before update on consultation_notes
  for each row execute function confidant_owner_fixed();

create function confidant_parent_fixed() returns trigger
  language plpgsql
  set search_path = pg_catalog, public, pg_temp
  as $$
  begin
    if to_jsonb(new) ->> tg_argv[0] is distinct from to_jsonb(old) ->> tg_argv[0] then
      raise exception 'the % of a % row cannot change', tg_argv[0], tg_table_name;
    end if;
    return new;
  end
  $$;
create trigger consultations_parent_fixed before update on consultations
  for each row execute function confidant_parent_fixed('appointment_id');
create trigger recordings_parent_fixed before update on recordings
  for each row execute function confidant_parent_fixed('consultation_id');
create trigger mode_switch_requests_parent_fixed before update on mode_switch_requests
  for each row execute function confidant_parent_fixed('consultation_id');
create trigger consultation_notes_parent_fixed before update on consultation_notes
  for each row execute function confidant_parent_fixed('consultation_id');

-- Row-level security: the consultation's patient and clinician, nobody else (staff included;
-- the DPO's reasoned access path is a later, separately audited feature).
alter table consultations enable row level security;
alter table consultations force row level security;
create policy consultations_parties on consultations
  using (patient_id = confidant_principal_id() and confidant_principal_kind() = 'patient'
         or clinician_id = confidant_principal_id() and confidant_principal_kind() = 'clinician'
         or confidant_is_system())
  with check (patient_id = confidant_principal_id() and confidant_principal_kind() = 'patient'
              or clinician_id = confidant_principal_id() and confidant_principal_kind() = 'clinician'
              or confidant_is_system());

alter table mode_switch_requests enable row level security;
alter table mode_switch_requests force row level security;
create policy mode_switch_requests_parties on mode_switch_requests
  using (patient_id = confidant_principal_id() and confidant_principal_kind() = 'patient'
         or clinician_id = confidant_principal_id() and confidant_principal_kind() = 'clinician'
         or confidant_is_system())
  with check (patient_id = confidant_principal_id() and confidant_principal_kind() = 'patient'
              or clinician_id = confidant_principal_id() and confidant_principal_kind() = 'clinician'
              or confidant_is_system());

-- Only the clinician asks; only the patient decides.
alter table recording_consents enable row level security;
alter table recording_consents force row level security;
create policy recording_consents_read on recording_consents for select
  using (patient_id = confidant_principal_id() and confidant_principal_kind() = 'patient'
         or clinician_id = confidant_principal_id() and confidant_principal_kind() = 'clinician'
         or confidant_is_system());
create policy recording_consents_write on recording_consents for insert
  with check (actor_id = confidant_principal_id()
              and (decision = 'requested' and clinician_id = confidant_principal_id() and confidant_principal_kind() = 'clinician'
                   or decision <> 'requested' and patient_id = confidant_principal_id() and confidant_principal_kind() = 'patient')
              -- system work (the demo clinic's history, imports) names its reason in the audit log
              or confidant_is_system());

-- The patient sees their recordings; only the clinician's browser (or system work finishing
-- an interrupted upload) writes them.
alter table recordings enable row level security;
alter table recordings force row level security;
create policy recordings_read on recordings for select
  using (patient_id = confidant_principal_id() and confidant_principal_kind() = 'patient'
         or clinician_id = confidant_principal_id() and confidant_principal_kind() = 'clinician'
         or confidant_is_system());
create policy recordings_create on recordings for insert
  with check (clinician_id = confidant_principal_id() and confidant_principal_kind() = 'clinician' or confidant_is_system());
create policy recordings_update on recordings for update
  using (clinician_id = confidant_principal_id() and confidant_principal_kind() = 'clinician' or confidant_is_system())
  with check (clinician_id = confidant_principal_id() and confidant_principal_kind() = 'clinician' or confidant_is_system());

alter table recording_chunks enable row level security;
alter table recording_chunks force row level security;
create policy recording_chunks_clinician on recording_chunks
  using (clinician_id = confidant_principal_id() and confidant_principal_kind() = 'clinician' or confidant_is_system())
  with check (clinician_id = confidant_principal_id() and confidant_principal_kind() = 'clinician');

-- Notes: the clinician writes; the patient reads them once the consultation has ended.
alter table consultation_notes enable row level security;
alter table consultation_notes force row level security;
create policy consultation_notes_clinician on consultation_notes
  using (clinician_id = confidant_principal_id() and confidant_principal_kind() = 'clinician')
  with check (clinician_id = confidant_principal_id() and confidant_principal_kind() = 'clinician');
create policy consultation_notes_system on consultation_notes for insert
  with check (confidant_is_system());
create policy consultation_notes_patient on consultation_notes for select
  using (patient_id = confidant_principal_id() and confidant_principal_kind() = 'patient'
         and exists (select 1 from consultations c where c.id = consultation_id and c.status = 'ended'));

grant select, insert, update on consultations, mode_switch_requests, recordings, consultation_notes to {{service_role}};
grant select, insert on recording_consents, recording_chunks to {{service_role}};
