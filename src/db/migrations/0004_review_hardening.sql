-- Hardening from a security review.

-- 1. The chain head follows the rows really inserted (a transition table), never the carried
--    setting alone: an INSERT that inserts nothing (no rows, ON CONFLICT DO NOTHING) leaves the
--    head where it was, and a forged carried tail can only produce a link verify refuses.
drop trigger audit_events_chain_close on audit_events;

create or replace function confidant_audit_chain_close() returns trigger
  language plpgsql security definer
  set search_path = pg_catalog, public, pg_temp
  as $$
  declare
    last record;
  begin
    perform set_config('confidant.audit_tail', '', true);
    select i.seq, i.hash into last from inserted i order by i.seq desc limit 1;
    if found then
      update public.audit_chain_head set seq = last.seq, hash = last.hash;
    end if;
    return null;
  end
  $$;

create trigger audit_events_chain_close after insert on audit_events
  referencing new table as inserted
  for each statement execute function confidant_audit_chain_close();

-- 2. Functions that run with the owner's rights look in pg_temp last, so a temporary table
--    cannot stand in for one of ours; and nobody but the owner may create temporary tables.
alter function confidant_audit_chain() set search_path = pg_catalog, public, pg_temp;
alter function confidant_audit_head() set search_path = pg_catalog, public, pg_temp;
alter function confidant_resolve_session(bytea, integer) set search_path = pg_catalog, public, pg_temp;
alter function confidant_taken_slots(uuid[], timestamptz, timestamptz) set search_path = pg_catalog, public, pg_temp;
do $$
begin
  execute format('revoke temporary on database %I from public', current_database());
end $$;

-- 3. Appointments: only a patient books for themselves (or system work); a clinician can never
--    create the link that would let them see a patient. The parties and the time of an
--    appointment never change once written (a reschedule is a new appointment).
drop policy appointments_visible on appointments;
create policy appointments_read on appointments for select
  using (patient_id = confidant_principal_id()
         or (clinician_id = confidant_principal_id() and confidant_principal_kind() = 'clinician')
         or confidant_is_system());
create policy appointments_book on appointments for insert
  with check ((patient_id = confidant_principal_id() and confidant_principal_kind() = 'patient')
              or confidant_is_system());
create policy appointments_change on appointments for update
  using (patient_id = confidant_principal_id()
         or (clinician_id = confidant_principal_id() and confidant_principal_kind() = 'clinician')
         or confidant_is_system())
  with check (patient_id = confidant_principal_id()
              or (clinician_id = confidant_principal_id() and confidant_principal_kind() = 'clinician')
              or confidant_is_system());

create function confidant_appointment_parties_fixed() returns trigger
  language plpgsql
  as $$
  begin
    if new.patient_id <> old.patient_id or new.clinician_id <> old.clinician_id
       or new.starts_at <> old.starts_at or new.ends_at <> old.ends_at then
      raise exception 'an appointment''s patient, clinician and time cannot change';
    end if;
    return new;
  end
  $$;
create trigger appointments_parties_fixed before update on appointments
  for each row execute function confidant_appointment_parties_fixed();

-- 4. Throttling attempts carry an id, so that a successful attempt can take back exactly its own rows.
alter table sign_in_failures add column id uuid not null default gen_random_uuid();
