//! Finding the Python that runs the AWS emulator.

use archgate_testkit::emulator::shebang_interpreter;
use std::path::PathBuf;

/// `python3` on `PATH`.
fn which_python3() -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join("python3"))
        .find(|path| path.is_file())
}

#[test]
fn a_pip_installed_moto_server_names_the_python_of_its_environment() {
    // Given a console script as pip writes it, naming an interpreter that exists
    let python = which_python3().expect("python3 is on PATH");
    let script = std::env::temp_dir().join(format!("moto_server-{}", std::process::id()));
    std::fs::write(
        &script,
        format!(
            "#!{}\n# -*- coding: utf-8 -*-\nfrom moto.server import main\n",
            python.display()
        ),
    )
    .unwrap();
    // When its interpreter is read, then it is that Python
    assert_eq!(shebang_interpreter(&script), Some(python));
    // And a script naming no interpreter gives none
    std::fs::write(&script, "echo hello\n").unwrap();
    assert_eq!(shebang_interpreter(&script), None);
    let _ = std::fs::remove_file(script);
}
