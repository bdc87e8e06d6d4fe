//! `wsbox-conformance`: runs Autobahn's fuzzing client against the wsbox echo
//! app and refreshes `reports/` (what `just conformance` runs).
//!
//! Usage: `wsbox-conformance [--cases PATTERN]... [--bin PATH] [--reports DIR]`
//! (defaults: every case, `target/release/wsbox`, `<repo>/reports`).

use anyhow::{Context, Result, bail};
use std::path::PathBuf;
use std::time::Instant;
use wsbox_conformance::{repo_root, wstest};

fn main() -> Result<()> {
    let mut cases = Vec::new();
    let mut bin = None;
    let mut reports = repo_root().join("reports");
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--cases" => cases.push(args.next().context("--cases needs a pattern")?),
            "--bin" => bin = Some(PathBuf::from(args.next().context("--bin needs a path")?)),
            "--reports" => reports = PathBuf::from(args.next().context("--reports needs a path")?),
            other => bail!(
                "unknown argument {other}; usage: wsbox-conformance [--cases PATTERN]... [--bin PATH] [--reports DIR]"
            ),
        }
    }
    if cases.is_empty() {
        cases.push("*".to_string());
    }
    let bin = bin.unwrap_or_else(|| {
        let exe = std::env::current_exe().expect("current exe");
        exe.with_file_name("wsbox")
    });
    if !bin.exists() {
        bail!("{} does not exist: build it first with `cargo build --release -p wsbox`", bin.display());
    }
    let wstest = wstest::ensure_wstest()?;
    let started = Instant::now();
    let outcome = wsbox_conformance::run_into_reports(&bin, &wstest, &cases, &reports)?;
    println!("{}", outcome.summary);
    println!(
        "ran {} cases in {:.0} s; reports in {}",
        outcome.results.cases.len(),
        started.elapsed().as_secs_f64(),
        reports.display()
    );
    Ok(())
}
