//! Build-time facts the binary reports about itself.
//!
//! - Rebuild when a migration is added: `sqlx::migrate!` embeds the files.
//! - `VALWATCH_COMMIT`: the commit the binary was built from, for
//!   `valwatch --version`, so that a bug report names the exact source.
//!   Taken from the environment when set (a container build has no `.git`:
//!   the Dockerfile passes it as a build argument), else from `git`, else
//!   "unknown" (a source tarball); a build never fails for want of git.

use std::path::PathBuf;
use std::process::Command;

/// Characters of the commit hash shown: 12 stays unambiguous in any
/// repository of this size, as `git describe` would choose.
const COMMIT_LEN: usize = 12;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_string())
}

fn main() {
    println!("cargo:rerun-if-changed=migrations");
    println!("cargo:rerun-if-env-changed=VALWATCH_COMMIT");

    let from_env = std::env::var("VALWATCH_COMMIT")
        .ok()
        .filter(|c| !c.trim().is_empty());
    let commit = match from_env {
        Some(c) => c.trim().to_string(),
        None => {
            // Re-run when HEAD moves: HEAD itself (checkout) and the branch
            // it points to (commit), loose or packed. `--git-path` resolves
            // them for plain clones and for worktrees, whose HEAD lives
            // elsewhere. Only existing files: cargo re-runs the script on
            // every build for a missing one, which would rebuild valwatch.
            let mut watched = vec!["HEAD".to_string(), "packed-refs".to_string()];
            watched.extend(git(&["symbolic-ref", "-q", "HEAD"]));
            for name in &watched {
                if let Some(p) = git(&["rev-parse", "--git-path", name]).map(PathBuf::from) {
                    if p.exists() {
                        println!("cargo:rerun-if-changed={}", p.display());
                    }
                }
            }
            git(&["rev-parse", "HEAD"]).unwrap_or_else(|| "unknown".to_string())
        }
    };
    let short: String = commit.chars().take(COMMIT_LEN).collect();
    println!("cargo:rustc-env=VALWATCH_COMMIT={short}");
}
