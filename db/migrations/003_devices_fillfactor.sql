-- The device registry is rewritten far more than it grows: ingest moves every device's last_seen forward
-- every INGEST_LAST_SEEN_MS (5 s by default; 2,000 rows a second for 10,000 devices). With full pages
-- (fillfactor 100) about half of those updates (52 % in a measurement here) find no room on their page, so
-- each writes a new entry in all three of the table's indexes; with half of each page free they are
-- heap-only (HOT) updates — last_seen and first_seen are in no index — and write none. Measured on this machine's PostgreSQL 15, 10,000 devices,
-- 100 of ingest's upserts of 2,000 (docs/benchmarks.md): 4.5–5.4 s at fillfactor 100, 1.8–2.2 s at 50.
-- Pages written from now on keep the room; an existing table converges as its rows are updated (or at
-- once with `VACUUM FULL devices`, which locks the table for the moments it takes).
ALTER TABLE devices SET (fillfactor = 50);
