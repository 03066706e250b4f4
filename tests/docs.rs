//! `mirrorgate generate-docs DIR`, the hidden subcommand the Debian package
//! is built with: a man page for the binary and each subcommand, and
//! completions for bash, zsh and fish, all from the same argument
//! definitions the binary parses with.

use std::process::Command;

#[test]
fn generate_docs_writes_a_man_page_per_subcommand_and_completions() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_mirrorgate"))
        .arg("generate-docs")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let man = dir.path().join("man");
    for sub in [
        "",
        "-serve",
        "-check-config",
        "-locate",
        "-explain",
        "-demo",
        "-manifest",
    ] {
        let page = std::fs::read_to_string(man.join(format!("mirrorgate{sub}.1")))
            .unwrap_or_else(|e| panic!("mirrorgate{sub}.1: {e}"));
        assert!(
            page.starts_with(".ie") || page.contains(".TH"),
            "not roff: mirrorgate{sub}.1"
        );
    }
    let serve = std::fs::read_to_string(man.join("mirrorgate-serve.1")).unwrap();
    assert!(serve.contains("config"), "serve's page lacks --config");
    // The packaging command itself is hidden: no page, not in --help.
    assert!(!man.join("mirrorgate-generate-docs.1").exists());
    let help = Command::new(env!("CARGO_BIN_EXE_mirrorgate"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&help.stdout).contains("generate-docs"));

    let completions = dir.path().join("completions");
    let bash = std::fs::read_to_string(completions.join("mirrorgate.bash")).unwrap();
    assert!(bash.contains("check-config") && bash.contains("complete -F"));
    assert!(completions.join("_mirrorgate").exists());
    assert!(completions.join("mirrorgate.fish").exists());
}
