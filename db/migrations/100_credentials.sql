-- Broker credentials (issue #4): username = device id for devices; scrypt hash with its salt and parameters.
CREATE TABLE IF NOT EXISTS credentials (
  username    text PRIMARY KEY,
  role        text NOT NULL CHECK (role IN ('device', 'service', 'viewer')),
  scopes      text[] NOT NULL DEFAULT '{}',
  hash        text NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  rotated_at  timestamptz,
  revoked_at  timestamptz
);
