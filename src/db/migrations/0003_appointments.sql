-- Appointments: clinicians' weekly availability and exceptions, same-day bookings of audio or
-- video consultations, in-app notifications and a mail outbox.

-- Weekly availability in the clinic's local time (the clinic's zone comes from configuration).
create table availability_rules (
  id uuid primary key default gen_random_uuid(),
  clinician_id uuid not null references accounts (id),
  weekday smallint not null check (weekday between 1 and 7), -- ISO: 1 = Monday
  start_time time not null,
  end_time time not null,
  created_at timestamptz not null default now(),
  check (end_time > start_time)
);
create index availability_rules_clinician_idx on availability_rules (clinician_id, weekday);

-- Leave, a blocked afternoon: instants, so they mean the same thing on any day of the year.
create table availability_exceptions (
  id uuid primary key default gen_random_uuid(),
  clinician_id uuid not null references accounts (id),
  starts_at timestamptz not null,
  ends_at timestamptz not null,
  reason text not null check (reason in ('leave', 'blocked', 'training', 'other')),
  note text check (length(note) <= 200),
  created_at timestamptz not null default now(),
  check (ends_at > starts_at)
);
create index availability_exceptions_clinician_idx on availability_exceptions (clinician_id, starts_at);

create table appointments (
  id uuid primary key default gen_random_uuid(),
  patient_id uuid not null references accounts (id),
  clinician_id uuid not null references accounts (id),
  starts_at timestamptz not null,
  ends_at timestamptz not null,
  mode text not null check (mode in ('audio', 'video')),
  reason text not null check (length(reason) between 1 and 500),
  status text not null default 'booked' check (status in ('booked', 'cancelled', 'completed', 'no_show')),
  cancelled_by text check (cancelled_by in ('patient', 'clinician', 'staff')),
  cancelled_at timestamptz,
  rescheduled_from uuid references appointments (id),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  check (ends_at > starts_at),
  check ((status = 'cancelled') = (cancelled_at is not null))
);
-- No double booking, enforced by the database: one live appointment per clinician per start,
-- and a patient cannot be in two consultations at once.
create unique index appointments_clinician_slot_key on appointments (clinician_id, starts_at) where status <> 'cancelled';
create unique index appointments_patient_slot_key on appointments (patient_id, starts_at) where status <> 'cancelled';
create index appointments_patient_idx on appointments (patient_id, starts_at);
create index appointments_clinician_idx on appointments (clinician_id, starts_at);

create table notifications (
  id uuid primary key default gen_random_uuid(),
  recipient_id uuid not null references accounts (id),
  kind text not null check (kind in ('appointment_booked', 'appointment_cancelled', 'appointment_rescheduled')),
  appointment_id uuid references appointments (id),
  created_at timestamptz not null default now(),
  read_at timestamptz
);
create index notifications_recipient_idx on notifications (recipient_id, created_at desc);

-- Mail to send later. It carries identifiers only; the sender renders the message from them
-- under its own system scope, so nothing personal waits here in clear text.
create table outbox (
  id uuid primary key default gen_random_uuid(),
  recipient_id uuid not null references accounts (id),
  channel text not null check (channel in ('email')),
  template text not null,
  appointment_id uuid references appointments (id),
  created_at timestamptz not null default now(),
  sent_at timestamptz,
  attempts integer not null default 0
);
create index outbox_pending_idx on outbox (created_at) where sent_at is null;

-- Row-level security.
alter table appointments enable row level security;
alter table appointments force row level security;
create policy appointments_visible on appointments
  using (patient_id = confidant_principal_id()
         or (clinician_id = confidant_principal_id() and confidant_principal_kind() = 'clinician')
         or confidant_is_system())
  with check (patient_id = confidant_principal_id()
              or (clinician_id = confidant_principal_id() and confidant_principal_kind() = 'clinician')
              or confidant_is_system());

-- Clinicians see the profiles of their own patients (those with an appointment with them).
create policy patient_profiles_own_clinician on patient_profiles for select
  using (confidant_principal_kind() = 'clinician'
         and exists (select 1 from appointments a
                     where a.patient_id = patient_profiles.account_id
                       and a.clinician_id = confidant_principal_id()));

-- Patients see who the clinic's GPs are (the API shapes this down to names).
create policy accounts_clinician_directory on accounts for select
  using (kind = 'clinician' and confidant_principal_kind() = 'patient');

alter table availability_rules enable row level security;
alter table availability_rules force row level security;
create policy availability_rules_read on availability_rules for select
  using (confidant_principal_kind() in ('patient', 'clinician', 'staff', 'system'));
create policy availability_rules_write on availability_rules
  using ((clinician_id = confidant_principal_id() and confidant_principal_kind() = 'clinician')
         or (confidant_principal_kind() = 'staff' and confidant_principal_role() = 'admin')
         or confidant_is_system())
  with check ((clinician_id = confidant_principal_id() and confidant_principal_kind() = 'clinician')
              or (confidant_principal_kind() = 'staff' and confidant_principal_role() = 'admin')
              or confidant_is_system());

alter table availability_exceptions enable row level security;
alter table availability_exceptions force row level security;
create policy availability_exceptions_read on availability_exceptions for select
  using (confidant_principal_kind() in ('patient', 'clinician', 'staff', 'system'));
create policy availability_exceptions_write on availability_exceptions
  using ((clinician_id = confidant_principal_id() and confidant_principal_kind() = 'clinician')
         or (confidant_principal_kind() = 'staff' and confidant_principal_role() = 'admin')
         or confidant_is_system())
  with check ((clinician_id = confidant_principal_id() and confidant_principal_kind() = 'clinician')
              or (confidant_principal_kind() = 'staff' and confidant_principal_role() = 'admin')
              or confidant_is_system());

alter table notifications enable row level security;
alter table notifications force row level security;
create policy notifications_own on notifications
  using (recipient_id = confidant_principal_id() or confidant_is_system())
  with check (recipient_id = confidant_principal_id() or confidant_is_system()
              -- whoever changes an appointment tells the people on it
              or exists (select 1 from appointments a where a.id = appointment_id
                          and (a.patient_id = recipient_id or a.clinician_id = recipient_id)));

alter table outbox enable row level security;
alter table outbox force row level security;
create policy outbox_enqueue on outbox for insert
  with check (confidant_is_system()
              or exists (select 1 from appointments a where a.id = appointment_id
                         and (a.patient_id = recipient_id or a.clinician_id = recipient_id)));
create policy outbox_system on outbox
  using (confidant_is_system()) with check (confidant_is_system());

-- Which slots are taken, without saying by whom: what a patient needs to see free slots.
create function confidant_taken_slots(p_clinicians uuid[], p_from timestamptz, p_to timestamptz)
  returns table (clinician_id uuid, starts_at timestamptz)
  language sql stable security definer
  set search_path = pg_catalog, public
  as $$
    select a.clinician_id, a.starts_at from appointments a
    where a.clinician_id = any (p_clinicians) and a.status <> 'cancelled'
      and a.starts_at >= p_from and a.starts_at < p_to
  $$;
revoke all on function confidant_taken_slots(uuid[], timestamptz, timestamptz) from public;
grant execute on function confidant_taken_slots(uuid[], timestamptz, timestamptz) to {{service_role}};
do $$
begin
  execute format('create policy appointments_owner_functions on appointments for select to %I using (true)', current_user);
end $$;

grant select, insert, update on appointments, notifications to {{service_role}};
grant select, insert, delete on availability_rules, availability_exceptions to {{service_role}};
grant insert on outbox to {{service_role}};
grant select, update on outbox to {{service_role}};
