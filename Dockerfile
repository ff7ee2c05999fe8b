# syntax=docker/dockerfile:1
# The i3xd server image: Node.js 24 LTS (the version of .node-version), compiled JavaScript and production
# dependencies only, run as a non-root user with its data under /data.
#
#   docker build -t i3xd:0.1.0 .
#   docker run -p 8080:8080 -v i3xd-data:/data -e I3XD_API_KEYS='[...]' i3xd:0.1.0
#
# Nothing secret is baked in: API keys, I3XD_STORE_URL, SENTRY_DSN and the like come from the environment
# (or a mounted keys file) at run time. NODE_ENV=production makes API keys required (docs/security.md).

FROM node:24.22.3-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# Scripts off: `prepare` would compile before the sources are copied, and no dependency needs its install
# script (better-sqlite3 ships prebuilt binaries for Node's N-API).
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

FROM node:24.22.3-bookworm-slim AS production-dependencies
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force

FROM node:24.22.3-bookworm-slim
ENV NODE_ENV=production \
    I3XD_HOST=0.0.0.0 \
    I3XD_PORT=8080 \
    I3XD_DATA_DIR=/data
WORKDIR /app
COPY --from=production-dependencies /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
# The image's own `node` user (uid 1000) owns the data directory and nothing else.
RUN mkdir -p /data && chown node:node /data
USER node
VOLUME ["/data"]
EXPOSE 8080
# No curl in the slim image: Node's own fetch asks the readiness probe, on the port the server listens on
# (plain HTTP: with I3XD_TLS_CERT set, override the health check).
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + process.env.I3XD_PORT + '/health/ready').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# i3xd drains in-flight requests on SIGTERM within I3XD_SHUTDOWN_TIMEOUT_MS (25 s by default); give
# `docker stop` a longer timeout (`--time 30`, compose `stop_grace_period`).
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "dist/cli.js"]
CMD ["serve"]
