-- The audit chain no longer carries its tail in a setting. `confidant.audit_tail` could be set by
-- any transaction (custom settings have no access control), so a forged tail could make the next
-- event link to a made-up or an earlier event: `verify` caught it, but it could be done. Now the
-- row trigger reads its predecessor from the table itself: the head (locked, which orders every
-- writer), or the last row this same statement has inserted before it (a VOLATILE row trigger sees
-- the earlier rows of its own command). There is nothing left to forge.

create or replace function confidant_audit_chain() returns trigger
  language plpgsql volatile security definer
  set search_path = pg_catalog, public, pg_temp
  as $$
  declare
    head_seq bigint;
    head_hash bytea;
    prev_seq bigint;
    prev_hash bytea;
  begin
    -- Held to the end of the transaction: one writer at a time links events to the chain.
    select h.seq, h.hash into head_seq, head_hash from audit_chain_head h for update;
    -- Past the head: rows this statement inserted before this one (the statement trigger moves
    -- the head to the last of them when the statement ends).
    select e.seq, e.hash into prev_seq, prev_hash from audit_events e where e.seq > head_seq order by e.seq desc limit 1;
    if not found then
      prev_seq := head_seq;
      prev_hash := head_hash;
    end if;
    new.seq := prev_seq + 1;
    new.occurred_at := date_trunc('milliseconds', clock_timestamp());
    new.prev_hash := prev_hash;
    new.hash := sha256(prev_hash || convert_to(confidant_audit_canonical(new), 'UTF8'));
    return new;
  end
  $$;

create or replace function confidant_audit_chain_close() returns trigger
  language plpgsql security definer
  set search_path = pg_catalog, public, pg_temp
  as $$
  declare
    last record;
  begin
    select i.seq, i.hash into last from inserted i order by i.seq desc limit 1;
    if found then
      update public.audit_chain_head set seq = last.seq, hash = last.hash;
    end if;
    return null;
  end
  $$;

-- The trigger reads the chain as the owner, whatever the writer may read (a patient's request
-- appends events it may not read back).
do $$
begin
  execute format('create policy audit_events_owner_chain on audit_events for select to %I using (true)', current_user);
end $$;
