//! Getting `wstest` and running the fuzzing client.

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The path of `wstest`, bootstrapped by `bootstrap-wstest.sh` when missing
/// (a cached Python 2.7 virtualenv). Fails with the script's explanation
/// when Python 2.7 is not available.
pub fn ensure_wstest() -> Result<PathBuf> {
    let script = crate::repo_root().join("conformance/bootstrap-wstest.sh");
    let output = Command::new("bash").arg(&script).output().with_context(|| format!("running {}", script.display()))?;
    if !output.status.success() {
        bail!(
            "could not install wstest (Autobahn|Testsuite) with {}:\n{}",
            script.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let path = PathBuf::from(stdout.lines().last().unwrap_or_default().trim());
    if !path.is_file() {
        bail!("{} did not print the path of wstest (got {stdout:?})", script.display());
    }
    Ok(path)
}

/// Runs `wstest -m fuzzingclient` against `url` for `cases` (Autobahn case
/// patterns such as `"1.*"` or `"*"`), writing its reports into `outdir`.
pub fn run_fuzzingclient(wstest: &Path, url: &str, cases: &[String], exclude: &[String], outdir: &Path) -> Result<()> {
    std::fs::create_dir_all(outdir)?;
    let spec = serde_json::json!({
        "outdir": outdir,
        "servers": [{ "agent": "wsbox", "url": url }],
        "cases": cases,
        "exclude-cases": exclude,
        "exclude-agent-cases": {},
    });
    let spec_path = outdir.join("fuzzingclient.json");
    std::fs::write(&spec_path, serde_json::to_vec_pretty(&spec)?)?;
    let output = Command::new(wstest)
        .args(["-m", "fuzzingclient", "-s"])
        .arg(&spec_path)
        .current_dir(outdir)
        .output()
        .with_context(|| format!("running {}", wstest.display()))?;
    if !output.status.success() || !outdir.join("index.json").exists() {
        bail!(
            "wstest failed ({}):\n{}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}
