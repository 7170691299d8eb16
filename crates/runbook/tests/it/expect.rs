//! Snapshot files: compare with the stored expectation, write it when missing (except in CI),
//! rewrite all with `UPDATE_EXPECT=1`.

use std::path::Path;

/// Checks `actual` against the file at `path`; returns a failure message on mismatch.
pub fn check(path: &Path, actual: &str) -> Result<(), String> {
    let update = std::env::var_os("UPDATE_EXPECT").is_some();
    match std::fs::read_to_string(path) {
        Ok(expected) if expected == actual => Ok(()),
        Ok(_) if update => write(path, actual),
        Ok(expected) => Err(format!(
            "snapshot {} differs (UPDATE_EXPECT=1 to accept):\n--- expected\n{expected}\n--- actual\n{actual}",
            path.display()
        )),
        Err(_) if std::env::var_os("CI").is_some() && !update => Err(format!(
            "snapshot {} is missing; run the tests locally and commit it",
            path.display()
        )),
        Err(_) => write(path, actual),
    }
}

fn write(path: &Path, actual: &str) -> Result<(), String> {
    std::fs::write(path, actual).map_err(|e| format!("cannot write {}: {e}", path.display()))
}
