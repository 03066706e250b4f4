//! `generate-docs DIR`: the man pages (one per subcommand, from the same
//! `clap` definition the binary parses with) and the shell completions the
//! Debian package installs. Run at packaging time, never by the service.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use clap_complete::Shell;

/// Writes `DIR/man/*.1` and `DIR/completions/` (bash, zsh, fish).
pub fn generate_docs(cmd: clap::Command, dir: &Path) -> anyhow::Result<ExitCode> {
    let man = dir.join("man");
    let completions = dir.join("completions");
    for d in [&man, &completions] {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    clap_mangen::generate_to(cmd.clone(), &man)
        .with_context(|| format!("writing man pages to {}", man.display()))?;
    let name = cmd.get_name().to_string();
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        let mut cmd = cmd.clone();
        clap_complete::generate_to(shell, &mut cmd, &name, &completions)
            .with_context(|| format!("writing {shell} completions"))?;
    }
    Ok(ExitCode::SUCCESS)
}
