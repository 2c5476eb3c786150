-- The audit trigger spent most of an audit transaction's database CPU setting up SQL-language
-- functions: confidant_audit_canonical and the 17 confidant_audit_field calls in it are not
-- inlined, and a SQL function that is not inlined has its body parsed and planned again for
-- every new expression state, which PL/pgSQL makes once per transaction (about 0.3 ms per
-- transaction that appends audit events, measured). As PL/pgSQL with the field rule written
-- out, the expression is parsed and planned once per connection and cached.
-- The canonical text is byte for byte what it was (same fields, same order, '~' for null,
-- 'octet length:value' otherwise), so existing hashes, `confidant audit verify` and
-- src/audit/verify.ts are unchanged; test/audit/audit-chain.test.ts compares the two.

create or replace function confidant_audit_canonical(e audit_events) returns text
  language plpgsql immutable parallel safe
  as $$
  begin
    return concat_ws('|',
      case when e.seq::text is null then '~' else octet_length(e.seq::text)::text || ':' || e.seq::text end,
      case when e.id::text is null then '~' else octet_length(e.id::text)::text || ':' || e.id::text end,
      case when ((extract(epoch from e.occurred_at) * 1000)::bigint)::text is null then '~' else octet_length(((extract(epoch from e.occurred_at) * 1000)::bigint)::text)::text || ':' || ((extract(epoch from e.occurred_at) * 1000)::bigint)::text end,
      case when e.actor_kind is null then '~' else octet_length(e.actor_kind)::text || ':' || e.actor_kind end,
      case when e.actor_id::text is null then '~' else octet_length(e.actor_id::text)::text || ':' || e.actor_id::text end,
      case when e.actor_role is null then '~' else octet_length(e.actor_role)::text || ':' || e.actor_role end,
      case when e.session_id::text is null then '~' else octet_length(e.session_id::text)::text || ':' || e.session_id::text end,
      case when e.system_reason is null then '~' else octet_length(e.system_reason)::text || ':' || e.system_reason end,
      case when e.action is null then '~' else octet_length(e.action)::text || ':' || e.action end,
      case when e.object_type is null then '~' else octet_length(e.object_type)::text || ':' || e.object_type end,
      case when e.object_id is null then '~' else octet_length(e.object_id)::text || ':' || e.object_id end,
      case when e.patient_id::text is null then '~' else octet_length(e.patient_id::text)::text || ':' || e.patient_id::text end,
      case when e.outcome is null then '~' else octet_length(e.outcome)::text || ':' || e.outcome end,
      case when e.client_ip is null then '~' else octet_length(e.client_ip)::text || ':' || e.client_ip end,
      case when e.user_agent is null then '~' else octet_length(e.user_agent)::text || ':' || e.user_agent end,
      case when e.request_id is null then '~' else octet_length(e.request_id)::text || ':' || e.request_id end,
      case when e.details is null then '~' else octet_length(e.details)::text || ':' || e.details end);
  end
  $$;
