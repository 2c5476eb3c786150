-- Kill switches (issue 16): every user-facing capability is a named feature that the DPO, an
-- admin, the operator's CLI or (later) a detection rule can switch off. One row per feature; the
-- service keeps them in memory and re-reads them on every NOTIFY on 'confidant_features' (sent
-- in the changing transaction, so it fires on commit) and after any reconnect.
create table features (
  name text primary key check (name ~ '^[a-z][a-z_]{1,40}$'),
  enabled boolean not null default true,
  changed_at timestamptz not null default now(),
  -- The account that made the last change; null for system work (CLI, a detection rule).
  changed_by uuid references accounts (id),
  -- Who made the last change as the audit log names them ('staff:dpo', 'system(operator: ...)').
  changed_by_label text not null default 'migration',
  reason text not null default 'initial state' check (length(reason) between 3 and 500),
  -- How the last switch-off happened: a person (DPO, admin, operator) or an automatic kill. After
  -- an automatic kill only the DPO turns the feature back on (the trigger below).
  disabled_by_kind text check (disabled_by_kind in ('person', 'automatic'))
);

insert into features (name) values
  ('account'), ('registration'), ('profile'), ('booking'), ('rescheduling'), ('appointments'),
  ('notifications'), ('consultation_join'), ('mode_switch'), ('recording'), ('replay_list'),
  ('replay_playback'), ('notes');

-- Flags hold no patient data, but they decide what the service serves: read by system work (the
-- cache, the CLI) and by the DPO and admins; changed only by them.
alter table features enable row level security;
alter table features force row level security;
create policy features_read on features for select
  using (confidant_is_system()
         or confidant_principal_kind() = 'staff' and confidant_principal_role() in ('dpo', 'admin'));
create policy features_change on features for update
  using (confidant_is_system()
         or confidant_principal_kind() = 'staff' and confidant_principal_role() in ('dpo', 'admin'))
  with check (confidant_is_system()
              or confidant_principal_kind() = 'staff' and confidant_principal_role() in ('dpo', 'admin'));

-- Defence in depth for the one rule that is not about rows: after an automatic kill, only the DPO
-- turns the feature back on (not an admin, not system work). Binds the service role only.
create function confidant_feature_changes() returns trigger
  language plpgsql
  set search_path = pg_catalog, public, pg_temp
  as $$
  begin
    if current_user <> '{{service_role}}' then
      return new;
    end if;
    if new.enabled and not old.enabled and old.disabled_by_kind = 'automatic'
       and not (confidant_principal_kind() = 'staff' and confidant_principal_role() = 'dpo') then
      raise exception 'only the DPO turns a feature back on after an automatic kill' using errcode = 'insufficient_privilege';
    end if;
    return new;
  end
  $$;
create trigger features_changes before update on features
  for each row execute function confidant_feature_changes();

grant select on features to {{service_role}};
grant update (enabled, changed_at, changed_by, changed_by_label, reason, disabled_by_kind) on features to {{service_role}};
