//! Writes a mount's files into a directory the way the driver's atomic writer
//! does: payload in a fresh hidden timestamped directory, `..data` symlink
//! swapped atomically, visible top-level names as symlinks into `..data`.

use std::io;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Component, Path, PathBuf};

/// A file to write.
#[derive(Debug)]
pub struct PayloadFile<'a> {
    /// Relative path.
    pub path: &'a str,
    /// Permission bits.
    pub mode: u32,
    /// Contents.
    pub contents: &'a [u8],
}

fn checked_relative(path: &str) -> io::Result<PathBuf> {
    let p = Path::new(path);
    let ok = !path.is_empty()
        && p.components().all(|c| matches!(c, Component::Normal(_)))
        && !path.starts_with("..");
    if ok {
        Ok(p.to_owned())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("refusing to write unsafe path {path:?}"),
        ))
    }
}

/// Replaces the content of `dir` with `files`, atomically for readers that go
/// through the top-level names.
///
/// # Errors
/// I/O errors, or a path that is absolute or escapes `dir`.
pub fn write_atomically(dir: &Path, files: &[PayloadFile<'_>]) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let stamp = format!(
        "..{}.{}",
        humantime::format_rfc3339_nanos(std::time::SystemTime::now())
            .to_string()
            .replace([':', '-', '.'], "_"),
        std::process::id()
    );
    let payload = dir.join(&stamp);
    std::fs::create_dir(&payload)?;
    let mut top_level = std::collections::BTreeSet::new();
    for f in files {
        let rel = checked_relative(f.path)?;
        if let Some(first) = rel.components().next() {
            top_level.insert(first.as_os_str().to_owned());
        }
        let target = payload.join(&rel);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&target, f.contents)?;
        // The driver applies the mode verbatim (no umask).
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(f.mode))?;
    }
    let tmp_link = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp_link);
    symlink(&stamp, &tmp_link)?;
    let data = dir.join("..data");
    let old = std::fs::read_link(&data).ok();
    std::fs::rename(&tmp_link, &data)?;
    for name in &top_level {
        let link = dir.join(name);
        match std::fs::symlink_metadata(&link) {
            Ok(m) if m.file_type().is_symlink() => {}
            Ok(m) if m.is_dir() => std::fs::remove_dir_all(&link)?,
            Ok(_) => std::fs::remove_file(&link)?,
            Err(_) => {}
        }
        if std::fs::symlink_metadata(&link).is_err() {
            symlink(Path::new("..data").join(name), &link)?;
        }
    }
    // Remove visible names that the new payload no longer has, and the old payload.
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let is_hidden = name.to_string_lossy().starts_with("..");
        if !is_hidden && !top_level.contains(&name) && entry.file_type()?.is_symlink() {
            std::fs::remove_file(entry.path())?;
        }
    }
    if let Some(old) = old.filter(|o| o != Path::new(&stamp)) {
        let _ = std::fs::remove_dir_all(dir.join(old));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_and_replaces() {
        let dir = tempfile::tempdir().unwrap();
        write_atomically(
            dir.path(),
            &[
                PayloadFile {
                    path: "a",
                    mode: 0o600,
                    contents: b"1",
                },
                PayloadFile {
                    path: "d/b",
                    mode: 0o644,
                    contents: b"2",
                },
            ],
        )
        .unwrap();
        assert_eq!(std::fs::read(dir.path().join("a")).unwrap(), b"1");
        assert_eq!(std::fs::read(dir.path().join("d/b")).unwrap(), b"2");
        let mode = std::fs::metadata(dir.path().join("a"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        write_atomically(
            dir.path(),
            &[PayloadFile {
                path: "a",
                mode: 0o644,
                contents: b"3",
            }],
        )
        .unwrap();
        assert_eq!(std::fs::read(dir.path().join("a")).unwrap(), b"3");
        assert!(std::fs::symlink_metadata(dir.path().join("d")).is_err());
        let hidden: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| {
                let n = e.unwrap().file_name().to_string_lossy().into_owned();
                (n.starts_with("..") && n != "..data").then_some(n)
            })
            .collect();
        assert_eq!(hidden.len(), 1, "old payload removed: {hidden:?}");
    }

    #[test]
    fn rejects_escaping_paths() {
        let dir = tempfile::tempdir().unwrap();
        for bad in ["../x", "/etc/passwd", "", "..data/x", "a/../../b"] {
            assert!(
                write_atomically(
                    dir.path(),
                    &[PayloadFile {
                        path: bad,
                        mode: 0o644,
                        contents: b""
                    }]
                )
                .is_err(),
                "{bad}"
            );
        }
    }
}
