-- The chain head was updated twice per audit event; a batch of N events left 2N versions of one
-- row inside one transaction, each UPDATE walking the ones before it. Now the row trigger takes
-- the head's row lock once per statement and carries the tail in a transaction-local setting;
-- a statement trigger writes the head once. Verification is unchanged (same canonical text).

create or replace function confidant_audit_chain() returns trigger
  language plpgsql security definer
  set search_path = pg_catalog, public
  as $$
  declare
    tail text := current_setting('confidant.audit_tail', true);
    xid text := txid_current()::text;
    prev_seq bigint;
    prev_hash bytea;
  begin
    -- Trust the carried tail only within the transaction (and statement run) that set it.
    if tail is null or tail = '' or split_part(tail, ':', 1) <> xid then
      select h.seq, h.hash into prev_seq, prev_hash from audit_chain_head h for update;
    else
      prev_seq := split_part(tail, ':', 2)::bigint;
      prev_hash := decode(split_part(tail, ':', 3), 'hex');
    end if;
    new.seq := prev_seq + 1;
    new.occurred_at := date_trunc('milliseconds', clock_timestamp());
    new.prev_hash := prev_hash;
    new.hash := sha256(prev_hash || convert_to(confidant_audit_canonical(new), 'UTF8'));
    perform set_config('confidant.audit_tail', xid || ':' || new.seq::text || ':' || encode(new.hash, 'hex'), true);
    return new;
  end
  $$;

create function confidant_audit_chain_close() returns trigger
  language plpgsql security definer
  set search_path = pg_catalog, public
  as $$
  declare
    tail text := current_setting('confidant.audit_tail', true);
  begin
    if tail is not null and tail <> '' and split_part(tail, ':', 1) = txid_current()::text then
      update audit_chain_head
        set seq = split_part(tail, ':', 2)::bigint, hash = decode(split_part(tail, ':', 3), 'hex');
    end if;
    perform set_config('confidant.audit_tail', '', true);
    return null;
  end
  $$;

create trigger audit_events_chain_close after insert on audit_events
  for each statement execute function confidant_audit_chain_close();
