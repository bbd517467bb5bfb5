# prepull's image: `prepull agent` for the DaemonSet (deploy/daemonset.yaml) by default, or any
# other subcommand (`docker run … ghcr.io/prepull/prepull:0.1.0 sync -f /prepulls --once`).
#
# What it holds on top of its base: dist/ (the esbuild bundle of the CLI and everything it
# imports: docs/adr/0005-bundled-cli.md), bin/ (the launcher) and package.json (its version):
# about 4 MB. No node_modules: the bundle needs none at run time, for any command (sync, agent,
# controller, audit). test/integration/image.test.ts builds this file, runs the image with the
# DaemonSet's securityContext and holds it to ≤ 8 MB over its base.
#
# The base is a build argument, so another Node 24 image on glibc can be used (the image test
# builds on one it makes itself). Its default is the official Node image by tag and by digest:
# node:24-bookworm-slim, Debian's glibc like the machines prepull is tested on (Alpine's image is
# smaller, but musl's resolver and libc differ from what the tests exercise, and the memory and
# start-up figures were measured on glibc builds of Node). The digest was pinned in December
# 2026 from docker-library/repo-info (repos/node/remote/24-bookworm-slim.md at commit
# e2e97043fc3e): the multi-arch index (linux/amd64, linux/arm64/v8, linux/ppc64le) of Node
# 24.19.0, built 2026-08-25. No registry is reachable from the machines this was written on, so
# it was not pulled here. The tag moves and the digest does not: expect Renovate or Dependabot
# to propose new digests, and review them like any dependency update.
#
# Build it from the repository's root (more, and arm64: docs/install.md, "Building the image"):
#   docker build -t ghcr.io/prepull/prepull:0.1.0 \
#     --build-arg REVISION="$(git rev-parse HEAD)" \
#     --build-arg CREATED="$(git log -1 --format=%cI)" .
ARG BASE=node:24-bookworm-slim@sha256:a9f5f7c91a432850b2a8a7797adf5eadb6c733ceed61167806cee7ea7fbc29df

# Stage 1: build, from source: every dependency (TypeScript and the bundler are dev
# dependencies), then the project's own build into dist/. The bundle is plain JavaScript, the
# same for every platform, so this stage runs on the building machine's platform even when the
# image is for another: no emulation, and esbuild's binary is the one that machine runs.
# BuildKit sets BUILDPLATFORM; Docker's legacy builder does not, and builds on linux/amd64. Do
# not declare `ARG BUILDPLATFORM` above: Docker 20.10's BuildKit then leaves it empty.
FROM --platform=${BUILDPLATFORM:-linux/amd64} ${BASE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
# --ignore-scripts: the project's `prepare` script runs the build, which needs the sources
# copied below; the build runs on its own afterwards.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY scripts ./scripts
COPY bin ./bin
COPY src ./src
# dist/meta.json is esbuild's record of what each chunk holds: for people reading the build,
# never read at run time.
RUN npm run build && rm dist/meta.json

# Stage 2: what runs. The base's node runs the launcher; nothing is installed here.
FROM ${BASE}
ARG BASE
# The release's version; test/deploy/dockerfile.test.ts keeps it equal to package.json's.
ARG VERSION=0.1.0
# The commit built, and when (RFC 3339): given by whoever builds; empty when not given.
ARG REVISION=
ARG CREATED=
LABEL org.opencontainers.image.title="prepull" \
      org.opencontainers.image.description="Pre-pulls, verifies and pins container images on Kubernetes nodes" \
      org.opencontainers.image.source="https://github.com/prepull/prepull" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.base.name="${BASE}"
WORKDIR /app
ENV NODE_ENV=production
COPY --from=build /src/package.json ./package.json
COPY --from=build /src/bin ./bin
# The licences of the bundled packages travel inside dist/ (dist/THIRD-PARTY-NOTICES.txt).
COPY --from=build /src/dist ./dist
# root, on purpose: the container runtime sockets the agent talks through belong to root
# (containerd's is root:root 0660, CRI-O's and k3s's are root's too; Docker Engine's is
# root:docker 0660 with a docker gid that differs per host). The DaemonSet drops every
# capability, so root there can do no more than a socket's owner may. The reasons, and what
# else is locked down: docs/install.md, "Security".
USER 0:0
ENTRYPOINT ["node", "/app/bin/prepull.js"]
CMD ["agent"]
