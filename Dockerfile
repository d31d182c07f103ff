# syntax=docker/dockerfile:1
#
# One image for every esp-fleet process: `docker run esp-fleet start` (all-in-one), or `broker`, `ingest`,
# `sqal`, `emulate`, `provision`, `check` … as the compose services do. There is no build step: tsx runs the
# TypeScript sources. Validated by deploy/test/compose.test.ts; not built here (no Docker engine on the
# machine this was written on) — see docs/deployment.md.

ARG NODE_VERSION=20

# ---------------------------------------------------------------------------------------------------- deps
# Production dependencies only. python3/make/g++ are here for the native addons (cbor-extract,
# @serialport/bindings-cpp) on platforms without a prebuilt binary; they never reach the runtime image.
FROM node:${NODE_VERSION}-bookworm AS deps
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
# Every workspace's package.json must be present before `npm ci`, or npm rejects the lockfile.
COPY package.json package-lock.json .npmrc ./
COPY common/package.json common/
COPY schemas/package.json schemas/
COPY db/package.json db/
COPY device-emulator/package.json device-emulator/
COPY broker/package.json broker/
COPY ingest/package.json ingest/
COPY sqal/package.json sqal/
COPY hil/package.json hil/
COPY cli/package.json cli/
RUN --mount=type=cache,target=/root/.npm \
    npm ci --omit=dev --no-audit --no-fund

# --------------------------------------------------------------------------------------------------- build
# The sources on top of the installed dependencies (.dockerignore keeps tests, benches, data and .git out).
FROM deps AS build
COPY . .

# ------------------------------------------------------------------------------------------------- runtime
FROM node:${NODE_VERSION}-bookworm-slim AS runtime
ENV NODE_ENV=production \
    DATA_DIR=/data \
    LOG_LEVEL=info
WORKDIR /app
# Code and dependencies owned by root and read-only to the process; only /data is writable.
COPY --from=build /app /app
RUN mkdir -p /data && chown node:node /data
VOLUME ["/data"]
# The `node` user (uid 1000) ships with the official image.
USER node
# MQTT, MQTT over WebSocket, all-in-one HTTP, broker/ingest/sqal HTTP. Compose publishes what it needs.
EXPOSE 1883 9001 3000 8081 8082 8083
# Liveness on the process's own HTTP port (compose sets HTTP_PORT per service and probes /health/ready).
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch(`http://127.0.0.1:${process.env.HTTP_PORT || 3000}/health`).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["node", "cli/bin/esp-fleet.mjs"]
CMD ["start"]
