//! The kernel series carries the ABI header unchanged: patch 0001 of
//! `kernel-patch/series` creates `include/uapi/linux/kvmng.h` byte for byte
//! as `kernel-patch/include/uapi/linux/kvmng.h` (the one source of truth),
//! and no later patch of the series touches it. `kernel.sh --check` (run
//! by `make kernel`) checks the same on the applied tree.

use std::path::PathBuf;

const HEADER: &str = "include/uapi/linux/kvmng.h";

fn kernel_patch_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../kernel-patch")
}

/// The series' patches (`series/000[1-9]*.patch` and later numbers), in order.
fn series() -> Vec<PathBuf> {
    let mut patches: Vec<PathBuf> = std::fs::read_dir(kernel_patch_dir().join("series"))
        .expect("kernel-patch/series")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            name.ends_with(".patch") && !name.starts_with("0000-")
        })
        .collect();
    patches.sort();
    patches
}

/// The content of the new file `path` that `patch` creates (one hunk,
/// `@@ -0,0 +1,N @@`), or `None` when the patch does not touch `path`.
fn created_file(patch: &str, path: &str) -> Option<String> {
    let header = format!("diff --git a/{path} b/{path}\n");
    let start = patch.find(&header)? + header.len();
    let rest = &patch[start..];
    // The section ends at the next file's diff or at the signature.
    let end = rest
        .find("\ndiff --git ")
        .or_else(|| rest.find("\n-- \n"))
        .map_or(rest.len(), |i| i + 1);
    let section = &rest[..end];
    assert!(
        section.contains("new file mode"),
        "{path}: the patch modifies it instead of creating it"
    );
    let hunk = section
        .find("\n@@ -0,0 +1,")
        .expect("one hunk creating the file")
        + 1;
    let mut lines = section[hunk..].lines();
    let range = lines.next().unwrap();
    let count: usize = range
        .trim_start_matches("@@ -0,0 +1,")
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .expect("hunk line count");
    let mut out = String::new();
    for line in lines.take(count) {
        let body = line
            .strip_prefix('+')
            .unwrap_or_else(|| panic!("{path}: not an added line: {line:?}"));
        out.push_str(body);
        out.push('\n');
    }
    Some(out)
}

#[test]
fn patch_0001_adds_exactly_the_uapi_header() {
    let patches = series();
    assert!(
        patches[0]
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("0001-"),
        "the series starts with patch 0001: {patches:?}"
    );
    let first = std::fs::read_to_string(&patches[0]).unwrap();
    let added = created_file(&first, HEADER).expect("patch 0001 creates the uapi header");
    let source = std::fs::read_to_string(kernel_patch_dir().join(HEADER)).unwrap();
    assert!(
        added == source,
        "patch 0001's {HEADER} differs from kernel-patch/{HEADER}: regenerate patch 0001"
    );
    for p in &patches[1..] {
        let text = std::fs::read_to_string(p).unwrap();
        assert!(
            !text.contains(&format!("diff --git a/{HEADER} ")),
            "{} changes {HEADER}: the ABI header changes in kernel-patch/include and patch 0001 only",
            p.display()
        );
    }
}
