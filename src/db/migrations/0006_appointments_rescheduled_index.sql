-- "Moved to": appointments are joined to the booking that replaced them; without this index
-- every appointment query scanned the whole table (measured: 150 ms per list at 200k rows).
create index appointments_rescheduled_from_idx on appointments (rescheduled_from) where rescheduled_from is not null;
