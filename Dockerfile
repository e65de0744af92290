# syntax=docker/dockerfile:1
# nodepass: a static musl binary in an empty image, run as a non-root user.
#
#   docker build -t nodepass .
#   docker run --rm --network host nodepass "client://127.0.0.1:10101/127.0.0.1:8080?mode=1"
#
# io_uring: Docker's default seccomp profile blocks io_uring_setup, so nodepass falls back to
# its epoll driver (NP_DRIVER=auto). For the io_uring data plane run with
# `--security-opt seccomp=unconfined` (or a profile that allows io_uring_setup/enter/register);
# kernels before 5.12 also need `--ulimit memlock=-1`. Raise fds with `--ulimit nofile=1048576`.

FROM rust:1-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools \
 && rm -rf /var/lib/apt/lists/*
RUN rustup target add "$(uname -m)-unknown-linux-musl"
WORKDIR /src
COPY . .
# ring compiles C: cc-rs finds musl-gcc (from musl-tools) for the *-linux-musl target.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin nodepass --target "$(uname -m)-unknown-linux-musl" \
 && cp "target/$(uname -m)-unknown-linux-musl/release/nodepass" /nodepass \
 && mkdir -p /rootfs/data

FROM scratch
COPY --from=build /nodepass /nodepass
# The master's state (nodepass.json: API key, instances) lives in /data, owned by the
# non-root user; mount a volume there to keep it across containers:
#   docker run -v nodepass-data:/data --network host nodepass "master://:9090/api"
# Without NP_MASTER_STATE_DIR the default would be /state (next to the binary), which
# uid 65532 cannot create; the master would refuse to start and name that path.
COPY --from=build --chown=65532:65532 /rootfs/data /data
ENV NP_MASTER_STATE_DIR=/data
VOLUME /data
WORKDIR /data
USER 65532:65532
ENTRYPOINT ["/nodepass"]
