-- Row-level security that trusts the application less (issue 15, spine item 3). The policies so
-- far said whose rows a principal may touch; here each one also says which columns and which
-- transitions its role may make, so that a bug in a service cannot do at the database what the
-- service would never do on purpose:
--   1. a half-signed-in principal ('pending': a password, no second factor yet) reaches only what
--      finishing sign-in needs (its account, credentials, recovery codes and sessions), never
--      appointments, notifications or a patient profile; and it cannot change its password;
--   2. nobody makes themselves staff, and a patient registers only as a patient;
--   3. a consultation's status is the clinician's (the patient's notes policy reads it), an ended
--      consultation stays ended, and the cameras go on only after the patient agreed;
--   4. a mode-switch request is made by whoever sends it and answered by the other side, once;
--   5. a notification stays with its recipient, who may only mark it read;
--   6. an appointment moves only along the transitions its parties make (cancel, outcome);
--   7. a revoked session stays revoked, a used recovery code stays used.
-- Grants cannot tell a patient from a clinician (both run as the service role), so per-role rules
-- are BEFORE triggers that refuse (insufficient_privilege); what no role ever changes through the
-- service is taken away from the service role itself with column-level grants. System work (jobs,
-- CLI, demo seeding) names its reason and is audited; it keeps the rules that hold for everyone.
-- The triggers bind the service role only: the owner (migrations, an operator at psql, the owner's
-- SECURITY DEFINER functions) owns the tables and could switch any trigger off anyway.

-- 1. Half-signed-in principals. ------------------------------------------------------------------

drop policy appointments_read on appointments;
create policy appointments_read on appointments for select
  using (patient_id = confidant_principal_id() and confidant_principal_kind() = 'patient'
         or clinician_id = confidant_principal_id() and confidant_principal_kind() = 'clinician'
         or confidant_is_system());
drop policy appointments_change on appointments;
create policy appointments_change on appointments for update
  using (patient_id = confidant_principal_id() and confidant_principal_kind() = 'patient'
         or clinician_id = confidant_principal_id() and confidant_principal_kind() = 'clinician'
         or confidant_is_system())
  with check (patient_id = confidant_principal_id() and confidant_principal_kind() = 'patient'
              or clinician_id = confidant_principal_id() and confidant_principal_kind() = 'clinician'
              or confidant_is_system());

drop policy patient_profiles_self on patient_profiles;
create policy patient_profiles_self on patient_profiles
  using (account_id = confidant_principal_id() and confidant_principal_kind() = 'patient' or confidant_is_system())
  with check (account_id = confidant_principal_id() and confidant_principal_kind() = 'patient' or confidant_is_system());

-- 5. Notifications: read and marked read by their recipient; written by whoever changes an
--    appointment, for the people on it. The recipient never changes (only read_at may).
drop policy notifications_own on notifications;
create policy notifications_read on notifications for select
  using (recipient_id = confidant_principal_id() and confidant_principal_kind() in ('patient', 'clinician')
         or confidant_is_system());
create policy notifications_mark_read on notifications for update
  using (recipient_id = confidant_principal_id() and confidant_principal_kind() in ('patient', 'clinician')
         or confidant_is_system())
  with check (recipient_id = confidant_principal_id() and confidant_principal_kind() in ('patient', 'clinician')
              or confidant_is_system());
-- The appointment is read under the sender's own row-level security: only its parties see it.
create policy notifications_send on notifications for insert
  with check (confidant_is_system()
              or confidant_principal_kind() in ('patient', 'clinician')
                 and exists (select 1 from appointments a where a.id = appointment_id
                             and (a.patient_id = recipient_id or a.clinician_id = recipient_id)));
revoke update on notifications from {{service_role}};
grant update (read_at) on notifications to {{service_role}};

-- 2. Accounts: the holder reads theirs (half signed in too: sign-in shows who is finishing it).
--    A new patient registers as themselves and only as a patient; staff accounts are operator
--    (system) work. What kind of account it is, its role and its email change through no path of
--    the service; the holder may change only what the app lets them (see the trigger).
drop policy accounts_self on accounts;
create policy accounts_self on accounts for select
  using (id = confidant_principal_id() or confidant_is_system());
create policy accounts_self_update on accounts for update
  using (id = confidant_principal_id() or confidant_is_system())
  with check (id = confidant_principal_id() or confidant_is_system());
create policy accounts_register on accounts for insert
  with check (confidant_is_system()
              or id = confidant_principal_id() and confidant_principal_kind() = 'patient'
                 and kind = 'patient' and staff_role is null and mfa_enabled_at is null and disabled_at is null);
revoke update on accounts from {{service_role}};
grant update (display_name, mfa_enabled_at, mfa_required, disabled_at) on accounts to {{service_role}};

create function confidant_account_changes() returns trigger
  language plpgsql
  set search_path = pg_catalog, public, pg_temp
  as $$
  begin
    if current_user <> '{{service_role}}' or confidant_is_system() then
      return new;
    end if;
    if new.mfa_required is distinct from old.mfa_required or new.disabled_at is distinct from old.disabled_at then
      raise exception 'only the operator requires two-step sign-in or disables an account' using errcode = 'insufficient_privilege';
    end if;
    -- Setting up two-step sign-in turns it on; nobody turns their own off.
    if new.mfa_enabled_at is distinct from old.mfa_enabled_at and (old.mfa_enabled_at is not null or new.mfa_enabled_at is null) then
      raise exception 'two-step sign-in, once on, stays on' using errcode = 'insufficient_privilege';
    end if;
    -- A patient's name follows their profile; nobody else renames an account, least of all one
    -- still owing its second factor.
    if new.display_name is distinct from old.display_name and confidant_principal_kind() is distinct from 'patient' then
      raise exception 'only a patient changes their own name' using errcode = 'insufficient_privilege';
    end if;
    return new;
  end
  $$;
create trigger accounts_changes before update on accounts
  for each row execute function confidant_account_changes();

-- Credentials: the holder's own; created at registration (the new patient) or by the operator.
-- Half signed in, the holder may finish sign-in (the TOTP step, enrolment) but not change the
-- password: that needs the second factor first.
drop policy account_credentials_self on account_credentials;
create policy account_credentials_self on account_credentials for select
  using (account_id = confidant_principal_id() or confidant_is_system());
create policy account_credentials_self_update on account_credentials for update
  using (account_id = confidant_principal_id() or confidant_is_system())
  with check (account_id = confidant_principal_id() or confidant_is_system());
create policy account_credentials_register on account_credentials for insert
  with check (confidant_is_system()
              or account_id = confidant_principal_id() and confidant_principal_kind() = 'patient');

create function confidant_credential_changes() returns trigger
  language plpgsql
  set search_path = pg_catalog, public, pg_temp
  as $$
  begin
    if current_user <> '{{service_role}}' then
      return new;
    end if;
    if confidant_principal_kind() = 'pending'
       and (new.password_hash is distinct from old.password_hash or new.password_changed_at is distinct from old.password_changed_at) then
      raise exception 'the password changes only after two-step sign-in' using errcode = 'insufficient_privilege';
    end if;
    return new;
  end
  $$;
create trigger account_credentials_changes before update on account_credentials
  for each row execute function confidant_credential_changes();

-- 7. Recovery codes: a used code stays used (used_at is all that ever changes).
revoke update on mfa_recovery_codes from {{service_role}};
grant update (used_at) on mfa_recovery_codes to {{service_role}};

create function confidant_recovery_code_used_once() returns trigger
  language plpgsql
  set search_path = pg_catalog, public, pg_temp
  as $$
  begin
    if current_user <> '{{service_role}}' then
      return new;
    end if;
    if old.used_at is not null and new.used_at is distinct from old.used_at then
      raise exception 'a used recovery code stays used' using errcode = 'insufficient_privilege';
    end if;
    return new;
  end
  $$;
create trigger mfa_recovery_codes_used_once before update on mfa_recovery_codes
  for each row execute function confidant_recovery_code_used_once();

-- Sessions: the service revokes them (last_seen_at is written by confidant_resolve_session, as
-- the owner); nothing else about a session changes once it exists, and a revoked one stays revoked.
revoke update on sessions from {{service_role}};
grant update (revoked_at, revoked_reason) on sessions to {{service_role}};

create function confidant_session_revocation_final() returns trigger
  language plpgsql
  set search_path = pg_catalog, public, pg_temp
  as $$
  begin
    if current_user <> '{{service_role}}' then
      return new;
    end if;
    if old.revoked_at is not null
       and (new.revoked_at is distinct from old.revoked_at or new.revoked_reason is distinct from old.revoked_reason) then
      raise exception 'a revoked session stays revoked' using errcode = 'insufficient_privilege';
    end if;
    return new;
  end
  $$;
create trigger sessions_revocation_final before update on sessions
  for each row execute function confidant_session_revocation_final();

-- 6. Appointments. ------------------------------------------------------------------------------
-- Booked by the patient, as booked; cancelled by either party (saying which), once; marked
-- completed or no-show by the clinician. What was booked (mode, reason, what it replaced) does not
-- change; a reschedule replaces only the patient's own appointment.
create function confidant_appointment_transitions() returns trigger
  language plpgsql
  set search_path = pg_catalog, public, pg_temp
  as $$
  declare
    kind text := confidant_principal_kind();
  begin
    if current_user <> '{{service_role}}' then
      return new;
    end if;
    if confidant_is_system() then
      return new;
    end if;
    if tg_op = 'INSERT' then
      if new.status <> 'booked' or new.cancelled_by is not null then
        raise exception 'an appointment is booked as booked' using errcode = 'insufficient_privilege';
      end if;
      if new.rescheduled_from is not null
         and not exists (select 1 from appointments o where o.id = new.rescheduled_from and o.patient_id = new.patient_id) then
        raise exception 'a booking replaces only an appointment of the same patient' using errcode = 'insufficient_privilege';
      end if;
      return new;
    end if;
    if new.mode is distinct from old.mode or new.reason is distinct from old.reason
       or new.rescheduled_from is distinct from old.rescheduled_from or new.created_at is distinct from old.created_at then
      raise exception 'what was booked does not change' using errcode = 'insufficient_privilege';
    end if;
    if (new.status, new.cancelled_by, new.cancelled_at) is distinct from (old.status, old.cancelled_by, old.cancelled_at) then
      if old.status = 'cancelled' then
        raise exception 'a cancelled appointment stays cancelled' using errcode = 'insufficient_privilege';
      elsif new.status = 'cancelled' then
        if old.status <> 'booked' or new.cancelled_by is distinct from kind then
          raise exception 'a booked appointment is cancelled by one of its parties, saying which' using errcode = 'insufficient_privilege';
        end if;
      elsif new.status in ('completed', 'no_show') then
        if kind <> 'clinician' or new.cancelled_by is not null then
          raise exception 'only the clinician records how an appointment went' using errcode = 'insufficient_privilege';
        end if;
      else
        raise exception 'an appointment does not go back to booked' using errcode = 'insufficient_privilege';
      end if;
    end if;
    return new;
  end
  $$;
create trigger appointments_transitions before insert or update on appointments
  for each row execute function confidant_appointment_transitions();

-- 3. Consultations. -----------------------------------------------------------------------------
-- The patient's notes policy (consultation_notes_patient) shows notes once status = 'ended', so
-- that status must be the clinician's alone: a consultation is created waiting, in its booked
-- mode; the clinician starts and ends it; ended is final. The patient may record that they joined
-- and switch modes; the cameras go on only by an accepted request that the patient made or
-- answered (the other side having answered or made it). Runs after consultations_owner (by name),
-- so booked_mode is already copied from the appointment.
create function confidant_consultation_transitions() returns trigger
  language plpgsql
  set search_path = pg_catalog, public, pg_temp
  as $$
  declare
    kind text := confidant_principal_kind();
    sys boolean := confidant_is_system();
    latest record;
  begin
    if current_user <> '{{service_role}}' then
      return new;
    end if;
    if tg_op = 'INSERT' then
      if not sys and (new.status <> 'waiting' or new.mode <> new.booked_mode or new.started_at is not null
                      or new.ended_at is not null or new.patient_joined_at is not null) then
        raise exception 'a consultation starts waiting, in the mode that was booked' using errcode = 'insufficient_privilege';
      end if;
      return new;
    end if;

    if new.booked_mode is distinct from old.booked_mode or new.created_at is distinct from old.created_at then
      raise exception 'what was booked does not change' using errcode = 'insufficient_privilege';
    end if;
    if old.status = 'ended'
       and (new.status, new.mode, new.started_at, new.ended_at, new.patient_joined_at)
           is distinct from (old.status, old.mode, old.started_at, old.ended_at, old.patient_joined_at) then
      raise exception 'an ended consultation stays ended' using errcode = 'insufficient_privilege';
    end if;
    if new.status is distinct from old.status
       and not (old.status = 'waiting' and new.status in ('live', 'ended') or old.status = 'live' and new.status = 'ended') then
      raise exception 'a consultation goes from waiting to live to ended' using errcode = 'insufficient_privilege';
    end if;
    if old.started_at is not null and new.started_at is distinct from old.started_at then
      raise exception 'a consultation starts once' using errcode = 'insufficient_privilege';
    end if;
    if sys then
      return new;
    end if;

    if kind = 'patient'
       and (new.status, new.started_at, new.ended_at) is distinct from (old.status, old.started_at, old.ended_at) then
      raise exception 'only the clinician starts and ends a consultation' using errcode = 'insufficient_privilege';
    end if;
    if new.patient_joined_at is distinct from old.patient_joined_at
       and (kind is distinct from 'patient' or old.patient_joined_at is not null) then
      raise exception 'only the patient records, once, that they joined' using errcode = 'insufficient_privilege';
    end if;
    if new.mode = 'video' and old.mode <> 'video' then
      select r.status, r.to_mode, r.requested_by, r.answered_by into latest
        from mode_switch_requests r
        where r.consultation_id = new.id and r.answered_at is not null
        order by r.answered_at desc, r.created_at desc
        limit 1;
      if not found or latest.status <> 'accepted' or latest.to_mode <> 'video'
         or latest.answered_by is not distinct from latest.requested_by
         or new.patient_id not in (latest.requested_by, latest.answered_by) then
        raise exception 'the cameras go on only when both sides have agreed' using errcode = 'insufficient_privilege';
      end if;
    end if;
    return new;
  end
  $$;
create trigger consultations_transitions before insert or update on consultations
  for each row execute function confidant_consultation_transitions();

-- 4. Mode-switch requests. ----------------------------------------------------------------------
-- Made by whoever sends it, one of the consultation's two parties. Switching to audio happens at
-- once (accepted by its sender: turning cameras off needs nobody's agreement); a switch to video
-- waits, and only the other side accepts or declines it. Withdrawing (by a party, or by the call
-- ending) needs nobody's agreement either. An answered request never changes again.
-- Runs after mode_switch_requests_owner (by name), so patient_id and clinician_id are set.
create function confidant_mode_switch_rules() returns trigger
  language plpgsql
  set search_path = pg_catalog, public, pg_temp
  as $$
  declare
    me uuid := confidant_principal_id();
    sys boolean := confidant_is_system();
  begin
    if current_user <> '{{service_role}}' then
      return new;
    end if;
    if new.requested_by not in (new.patient_id, new.clinician_id)
       or new.answered_by is not null and new.answered_by not in (new.patient_id, new.clinician_id) then
      raise exception 'only the consultation''s patient and clinician ask and answer' using errcode = 'insufficient_privilege';
    end if;

    if tg_op = 'INSERT' then
      if not sys and new.requested_by is distinct from me then
        raise exception 'a request is made by whoever sends it' using errcode = 'insufficient_privilege';
      end if;
      if not (new.status = 'pending' and new.to_mode = 'video' and new.answered_by is null
              or new.status = 'accepted' and new.to_mode = 'audio' and new.answered_by = new.requested_by) then
        raise exception 'a switch to video waits for the other side; only a switch to audio is made at once' using errcode = 'insufficient_privilege';
      end if;
      return new;
    end if;

    if new.requested_by is distinct from old.requested_by or new.to_mode is distinct from old.to_mode
       or new.created_at is distinct from old.created_at then
      raise exception 'what was asked, and by whom, does not change' using errcode = 'insufficient_privilege';
    end if;
    if old.status <> 'pending' then
      if (new.status, new.answered_by, new.answered_at) is distinct from (old.status, old.answered_by, old.answered_at) then
        raise exception 'an answered request stays answered' using errcode = 'insufficient_privilege';
      end if;
      return new;
    end if;
    if new.status = 'pending' then
      if new.answered_by is not null then
        raise exception 'a pending request has no answer' using errcode = 'insufficient_privilege';
      end if;
    elsif new.status in ('accepted', 'declined') then
      if new.answered_by is null or new.answered_by = new.requested_by or not sys and new.answered_by is distinct from me then
        raise exception 'only the other side accepts or declines a request, in their own name' using errcode = 'insufficient_privilege';
      end if;
    elsif new.answered_by is not null and not sys and new.answered_by is distinct from me then
      raise exception 'a request is withdrawn in one''s own name' using errcode = 'insufficient_privilege';
    end if;
    return new;
  end
  $$;
create trigger mode_switch_requests_rules before insert or update on mode_switch_requests
  for each row execute function confidant_mode_switch_rules();
