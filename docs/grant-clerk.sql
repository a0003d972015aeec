-- Let a PostgreSQL role record in and read a twinflow register, but never alter or delete
-- what is recorded: the same rights as `twinflow admin grant-clerk ROLE`.
--
-- Run it as the register's owner, after the register exists (`twinflow admin install`), for
-- a register in the default schema (public); for ?schema=NAME, replace "public" below.
--
--   psql -h HOST -U OWNER -d DBNAME -v clerk=anna -v dbname=DBNAME -f docs/grant-clerk.sql
--
-- Why each right (see docs/postgres.md):
-- * events: SELECT to read, INSERT to record; never UPDATE, DELETE or TRUNCATE (the
--   triggers refuse them from anyone, the owner included);
-- * the events' sequence: USAGE, to number a new event in the global order;
-- * twinflow_lock_events: eventsourcing serialises inserts with an EXCLUSIVE lock on the
--   events table, which PostgreSQL grants only to roles that may update, delete or truncate;
--   this function, owned by the owner, takes it for the clerk;
-- * twinflow_meta and the snapshots: read only (a forged snapshot would mislead reads);
-- * the read models (cases, parties, steps, audit, position): derived from the events and
--   rebuilt from them, so clerks keep them up to date.

BEGIN;

GRANT CONNECT ON DATABASE :"dbname" TO :"clerk";
GRANT USAGE ON SCHEMA public TO :"clerk";

GRANT SELECT, INSERT ON public.twinflow_events TO :"clerk";
REVOKE UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER ON public.twinflow_events FROM :"clerk";
GRANT USAGE ON SEQUENCE public.twinflow_events_notification_id_seq TO :"clerk";
GRANT EXECUTE ON FUNCTION public.twinflow_lock_events(integer) TO :"clerk";

GRANT SELECT ON public.twinflow_meta, public.twinflow_snapshots TO :"clerk";
REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON public.twinflow_meta, public.twinflow_snapshots
    FROM :"clerk";

GRANT SELECT, INSERT, UPDATE, DELETE ON
    public.twinflow_audit,
    public.twinflow_cases,
    public.twinflow_parties,
    public.twinflow_position,
    public.twinflow_steps
    TO :"clerk";

COMMIT;
