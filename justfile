# Conveniences over cargo; every recipe is a thin wrapper and never the only way.
# (`just` itself: `cargo install just --locked`.)

# Serve the echo app on ws://127.0.0.1:1234.
serve *ARGS:
    cargo run --release -- serve {{ARGS}}

# Every test, the Autobahn run included (what .ci/run calls).
test:
    cargo test --release --workspace

# Run every Autobahn case against the echo app and refresh reports/.
conformance:
    cargo build --release -p wsbox -p wsbox-conformance
    ./target/release/wsbox-conformance

# Lints as CI runs them: fmt and clippy over every crate, the guest's
# feature sets included.
lint:
    .ci/lint

# Benchmark wsbox against a raw TCP echo, tokio-tungstenite and Bun, closed loop
# and at fixed rates (~25 minutes on 2 cores);
# rewrites the results section of docs/benchmarks.md.
bench *ARGS:
    cargo build --release -p wsbox -p wsbox-bench
    ./target/release/wsbox-bench run --out docs/benchmarks.md {{ARGS}}

# Fuzz every target for SECS seconds each (nightly; installs cargo-fuzz once).
# Finds land in fuzz/corpus/<target>, which `cargo test` replays natively.
fuzz SECS="60":
    command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
    for t in handshake frame_decoder connection inflate; do cargo +nightly fuzz run $t -- -max_total_time={{SECS}} || exit 1; done

# The hostile-peer tests at full size (1 000 peers × 1 000 messages, 100
# reset rounds) and a crowd of 10 000 plain and compressed clients (the
# default connection cap; needs `ulimit -n` above 10 000): minutes instead
# of seconds.
soak:
    WSBOX_SOAK=1 cargo test --release -p wsbox --test hostile --test crowd -- --test-threads 1

# One component under every host: the wsbox host with each binding, stock
# `wasmtime run`, Node + jco, beside tokio-tungstenite (a few minutes; the
# first run installs the wasmtime CLI and jco); rewrites the hosts section of
# docs/benchmarks.md.
bench-hosts *ARGS:
    cargo build --release -p wsbox -p wsbox-bench
    ./target/release/wsbox components --out examples/node/components
    bash examples/node/bootstrap.sh
    ./target/release/wsbox-bench hosts --out docs/benchmarks.md \
        --wasmtime "$(bash host/tests/clients/bootstrap-wasmtime-cli.sh)" --node-example examples/node {{ARGS}}

# A light client's round trip alone and beside a flooding peer (wsbox and
# tokio-tungstenite, ~1 minute); rewrites the fairness section of docs/benchmarks.md.
bench-fairness *ARGS:
    cargo build --release -p wsbox -p wsbox-bench
    ./target/release/wsbox-bench fairness --out docs/benchmarks.md {{ARGS}}

# Topics: wsbox's relay, Bun's pub/sub and a tokio-tungstenite relay at fixed
# publication rates (~2 minutes; the first run installs Bun from the npm
# registry); rewrites the broadcast section of docs/benchmarks.md.
bench-broadcast *ARGS:
    cargo build --release -p wsbox -p wsbox-bench
    ./target/release/wsbox-bench broadcast --out docs/benchmarks.md {{ARGS}}

# The same WebSockets over HTTP/1.1 and as HTTP/2 streams (RFC 8441) on
# wsbox with TLS (~1 minute); rewrites the HTTP/2 section of
# docs/benchmarks.md.
bench-http2 *ARGS:
    cargo build --release -p wsbox -p wsbox-bench
    ./target/release/wsbox-bench http2 --out docs/benchmarks.md {{ARGS}}

# What io_uring would save: a broadcast's sends and a lone client's echo on
# loopback TCP, a system call each against io_uring submissions (~1 minute
# with the default 3 rounds of 5 s); rewrites the io_uring section of
# docs/benchmarks.md.
bench-uring *ARGS:
    cargo build --release -p wsbox-bench
    ./target/release/wsbox-bench uring --out docs/benchmarks.md {{ARGS}}
