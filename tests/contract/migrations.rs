//! The four migration folders must carry identical version numbers and names.

use std::collections::BTreeMap;
use std::path::Path;

fn listing(dir: &str) -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(dir);
    let mut names: Vec<String> = std::fs::read_dir(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn migration_folders_match() {
    let folders = ["sqlite", "postgres", "mysql", "cockroach"];
    let all: BTreeMap<&str, Vec<String>> = folders.iter().map(|f| (*f, listing(f))).collect();
    let reference = &all["sqlite"];
    assert!(!reference.is_empty());
    for (folder, names) in &all {
        assert_eq!(
            names, reference,
            "migrations/{folder} differs from migrations/sqlite"
        );
    }
    for name in reference {
        let (version, rest) = name.split_once('_').expect("NNNN_name.sql");
        assert!(
            version.len() == 4 && version.chars().all(|c| c.is_ascii_digit()),
            "{name}"
        );
        assert!(
            rest.ends_with(".sql") && !rest.ends_with(".down.sql"),
            "{name}"
        );
    }
}
