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

# Lints as CI wants them.
lint:
    cargo fmt --all --check
    cargo clippy --workspace --all-targets -- -D warnings

# Benchmark wsbox against a raw TCP echo and tokio-tungstenite (a few minutes);
# rewrites the results section of docs/benchmarks.md.
bench *ARGS:
    cargo build --release -p wsbox -p wsbox-bench
    ./target/release/wsbox-bench run --out docs/benchmarks.md {{ARGS}}
