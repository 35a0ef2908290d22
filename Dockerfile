# syntax=docker/dockerfile:1
# Herald's image: one image for every role (HERALD_ROLE=api|worker|all) and for the migrations
# step (`npm run migrate`). Build: docker build -t herald:dev .
# The production stage is reproduced without Docker by deploy/test/image.test.ts.

# ---- build: the whole workspace, dev dependencies included, bundled by esbuild -------------
# Node 24 LTS on Debian bookworm, slim variant; both stages use the same pinned tag.
FROM node:24.21.0-bookworm-slim AS build
WORKDIR /app
ENV NX_DAEMON=false NX_NO_CLOUD=true NX_TUI=false NX_SKIP_NX_CACHE=true
COPY package.json package-lock.json ./
RUN --mount=type=cache,target=/root/.npm,sharing=locked \
    npm ci --no-audit --no-fund
COPY . .
# dist/apps/server/main.js (workspace libs and drizzle-orm bundled, other npm packages external) + migrations/
RUN npm run build

# ---- production: the bundle plus production dependencies only ------------------------------
FROM node:24.21.0-bookworm-slim AS production
WORKDIR /app
ENV NODE_ENV=production
COPY package.json package-lock.json ./
# --ignore-scripts: the only production install script is msgpackr-extract's optional native
# build, which BullMQ does without (it falls back to plain JavaScript); no compiler needed.
RUN --mount=type=cache,target=/root/.npm,sharing=locked \
    npm ci --omit=dev --ignore-scripts --no-audit --no-fund
COPY --from=build /app/dist ./dist
# Files stay owned by root and read-only to the process. npm itself needs a writable cache
# only for its logs: point it at /tmp (an emptyDir under readOnlyRootFilesystem) and keep it
# quiet, so stdout carries Herald's JSON logs only.
ENV NPM_CONFIG_CACHE=/tmp/.npm NPM_CONFIG_UPDATE_NOTIFIER=false NPM_CONFIG_LOGLEVEL=silent
# The image's `node` user, by number so Kubernetes' runAsNonRoot can verify it.
USER 1000:1000
EXPOSE 3000
# No HEALTHCHECK: Kubernetes probes /healthz and /readyz; compose defines its own checks.
# npm (PID 1) forwards SIGTERM to node, which drains and exits 0: the start script `exec`s node
# so no shell sits in between to swallow the signal.
CMD ["npm", "start"]
