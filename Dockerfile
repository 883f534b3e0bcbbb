# Closeloop image: one image, two processes (see docker-compose.yml).
#   worker: node dist/workers/main.js   (the default CMD)
#   api:    node dist/api/main.js
#
# Install scripts are not run (--ignore-scripts): the Temporal SDK's native bridge ships
# prebuilt, and package.json's allowScripts only permits the @embedded-postgres/* packages,
# which are optional, local-dev only, and left out here (--omit=optional).

ARG NODE_IMAGE=node:20-bookworm-slim

# ---------------------------------------------------------------------------------------------
# build: all dev dependencies, compile TypeScript to dist/
FROM ${NODE_IMAGE} AS build
WORKDIR /app
ENV NPM_CONFIG_UPDATE_NOTIFIER=false NPM_CONFIG_FUND=false NPM_CONFIG_AUDIT=false

COPY package.json package-lock.json ./
RUN npm ci --omit=optional --ignore-scripts

# Sources (.dockerignore keeps out node_modules, dist, tests, local state and the like).
COPY . .
RUN npm run build && rm -rf dist/test dist/bench

# ---------------------------------------------------------------------------------------------
# deps: production dependencies only
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
ENV NPM_CONFIG_UPDATE_NOTIFIER=false NPM_CONFIG_FUND=false NPM_CONFIG_AUDIT=false

COPY package.json package-lock.json ./
# The Temporal core bridge ships native libraries for every platform; keep only this one's.
RUN npm ci --omit=dev --omit=optional --ignore-scripts \
 && npm cache clean --force \
 && find node_modules/@temporalio/core-bridge/releases -mindepth 1 -maxdepth 1 \
      ! -name "$(uname -m)-unknown-linux-gnu" -exec rm -rf {} +

# ---------------------------------------------------------------------------------------------
# runtime
FROM ${NODE_IMAGE} AS runtime
WORKDIR /app
# HOST: the API's default (127.0.0.1) is unreachable from outside a container.
ENV NODE_ENV=production \
    NODE_OPTIONS=--enable-source-maps \
    HOST=0.0.0.0 \
    PORT=3000

# Owned by root and read-only for the app user: nothing at run time writes here (the worker
# bundles its workflows in memory).
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./

USER node
EXPOSE 3000

# Both processes stop cleanly on SIGTERM (the worker via the SDK's shutdownSignals, the API by
# closing its server); docker-compose.yml also runs them under an init (init: true).
CMD ["node", "dist/workers/main.js"]
