# syntax=docker/dockerfile:1
#
# mlbot: one static binary plus git, as a non-root user.
#
#   docker build --build-arg VERSION=$(git describe --tags --always) -t mlbot .
#   docker run -p 8080:8080 -e MLBOT_REDIS_URL=redis://redis:6379/0 \
#     -e MLBOT_GITHUB_TOKEN=… -e MLBOT_GITHUB_WEBHOOK_SECRET=… \
#     -e MLBOT_REPO_ALLOWLIST='github.com/acme/*' --init mlbot
#
# The local runner runs each pipeline step with /bin/sh inside this
# container, so the image has only what mlbot itself needs (sh, git, CA
# certificates). Build FROM it and add the tools your .mlbot.yml calls
# (python, go, …). Run with --init (or tini) so that processes orphaned by
# training commands are reaped.

# ---- build ----
# go.mod asks for go 1.26.8: the 1.26 image must be at that patch or later
# (official images set GOTOOLCHAIN=local and will not download a newer one).
FROM --platform=$BUILDPLATFORM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download
COPY . .
ARG VERSION=dev
ARG TARGETOS TARGETARCH
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -buildvcs=false \
      -ldflags "-s -w -X main.version=${VERSION}" \
      -o /out/mlbot ./cmd/mlbot

# ---- run ----
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates git \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 mlbot \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/mlbot \
      --no-create-home --shell /usr/sbin/nologin mlbot \
 && mkdir -p /var/lib/mlbot \
 && chown 10001:10001 /var/lib/mlbot \
 && chmod 0750 /var/lib/mlbot
COPY --from=build /out/mlbot /usr/local/bin/mlbot
ENV MLBOT_DATA_DIR=/var/lib/mlbot \
    HOME=/var/lib/mlbot
WORKDIR /var/lib/mlbot
# mlbot runs as root in its container so that every step runs in the
# namespace sandbox as MLBOT_SANDBOX_UID (200000), a uid that owns nothing,
# with mlbot's data directory, files and processes hidden from it. Docker's
# defaults forbid the sandbox's namespaces and /proc: run with
#   --security-opt seccomp=unconfined --security-opt systempaths=unconfined
# (checked with Docker 28), or mlbot refuses to start and says why. As the
# image's unprivileged user 10001 (--user 10001), Docker refused the user
# namespace (fork/exec: permission denied) on the machine this was checked on.
EXPOSE 8080
ENTRYPOINT ["mlbot"]
CMD ["serve"]
