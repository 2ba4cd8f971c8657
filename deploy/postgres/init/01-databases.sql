-- One database per service, owned by the application role (POSTGRES_USER).
-- Runs once, on the first start with an empty data directory. Written to be re-runnable:
-- psql's \gexec runs each CREATE only for a database that does not exist yet.
-- (The services also create their database at start-up if it is missing.)

SELECT format('CREATE DATABASE %I', name)
FROM unnest(ARRAY[
    'salesops_ingest',
    'salesops_routing',
    'salesops_metrics',
    'salesops_forecast'
]) AS name
WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = name)
\gexec
