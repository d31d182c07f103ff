-- The device registry is rewritten far more than it grows: ingest moves every device's last_seen forward
-- every INGEST_LAST_SEEN_MS (5 s by default; 2,000 rows a second for 10,000 devices). With full pages
-- (fillfactor 100) most of those updates cannot stay on their page, so each writes a new entry in all three
-- of the table's indexes; with half of each page free they are heap-only (HOT) updates — last_seen and
-- first_seen are in no index — and write none. Measured on this machine's PostgreSQL 15, 10,000 devices,
-- 100 upserts of 2,000 (docs/benchmarks.md): 5.2 s at fillfactor 100, 2.3 s at 50.
-- Pages written from now on keep the room; an existing table converges as its rows are updated (or at
-- once with `VACUUM FULL devices`, which locks the table for the moments it takes).
ALTER TABLE devices SET (fillfactor = 50);
