-- The tables written at rate are analyzed once per million changed rows, not at every autovacuum visit
-- (plain PostgreSQL; PGlite has no autovacuum, the settings are kept there and do nothing).
--
-- Autovacuum visits each database once a minute and analyzes a table once 50 rows + 10 % of it have
-- changed since the last time. A young telemetry table grows by more than that every minute, and the device
-- registry (every device's last_seen rewritten every 5 s) always has: so every visit analyzed them all.
-- Logged at 10,000 readings/s, one visit cost 0.65 s of CPU in ~1 s, 0.57 s of it in the analyzes
-- (fridge_readings 0.31 s, devices 0.11, events 0.09, device_status 0.06), and on a machine that is also
-- the broker and ingest that burst was where the broker fell behind (docs/benchmarks.md, fifteenth
-- session: in 12 of 15 traced runs). With 1,000,000 + 10 %, a table is analyzed every million rows while
-- it is young (~100 s of readings at that rate) and as before once it is large. What these tables are
-- queried by — one device's rows by time, a device by id — is an index's job whatever the statistics say.
ALTER TABLE fridge_readings SET (autovacuum_analyze_threshold = 1000000);
ALTER TABLE sqal_samples SET (autovacuum_analyze_threshold = 1000000);
ALTER TABLE devices SET (autovacuum_analyze_threshold = 1000000);
ALTER TABLE events SET (autovacuum_analyze_threshold = 1000000);
ALTER TABLE device_status SET (autovacuum_analyze_threshold = 1000000);
