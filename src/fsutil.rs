//! File helpers that never leave a half-written file behind and never replace what is not ours.
use crate::error::{Error, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Where a write to `path` lands: `path` itself, or the file a symlink points to (the link is
/// written through, never replaced). Anything but a regular file or a missing path is refused,
/// so `--out /dev/null` or `--out some-folder` cannot turn a device or a folder into a file.
pub fn write_target(path: &Path) -> Result<PathBuf> {
    let target = match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => std::fs::canonicalize(path).map_err(|e| {
            Error::run(
                path,
                format!("a symbolic link whose target cannot be reached ({e}); evolve writes through links to regular files only"),
            )
        })?,
        _ => path.to_path_buf(),
    };
    match std::fs::metadata(&target) {
        Ok(meta) if !meta.is_file() => Err(Error::run(
            path,
            format!(
                "is a {}, not a regular file; evolve writes only regular files (choose a file path, or `-` for standard output where offered)",
                file_kind(&meta)
            ),
        )),
        _ => Ok(target),
    }
}

fn file_kind(meta: &std::fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    if t.is_dir() {
        "directory"
    } else if t.is_fifo() {
        "FIFO"
    } else if t.is_char_device() || t.is_block_device() {
        "device"
    } else if t.is_socket() {
        "socket"
    } else {
        "special file"
    }
}

/// Writes `bytes` to `path` atomically: a temporary file in the same folder, fsync, rename.
/// A crash leaves either the old file or the new one, never a mix; a failed write (a full disk)
/// removes its temporary file and names `path` in the error.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let target = write_target(path)?;
    let dir = target
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
    let written = std::fs::File::create(&tmp).and_then(|mut file| {
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, &target)
    });
    written.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(path, e)
    })
}

/// Serialises `value` as pretty JSON (with a final newline) and writes it atomically.
pub fn write_json_atomic<T: serde::Serialize>(path: &Path, value: &T) -> Result<()> {
    let mut text = serde_json::to_string_pretty(value).expect("plain data serialises");
    text.push('\n');
    write_atomic(path, text.as_bytes())
}

pub fn read_to_string(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| Error::io(path, e))
}

/// Parses JSON into `T`; the error names the field path, line and column (for the caller to
/// prefix with the file name).
pub fn parse_json<T: serde::de::DeserializeOwned>(text: &str) -> std::result::Result<T, String> {
    let mut de = serde_json::Deserializer::from_str(text);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let place = format!("line {} column {}", inner.line(), inner.column());
        if path == "." || inner.is_syntax() || inner.is_eof() {
            format!("malformed JSON at {place}: {inner}")
        } else {
            let message = inner.to_string();
            let message = message
                .rfind(" at line ")
                .map_or(message.as_str(), |i| &message[..i]);
            format!("field `{path}` ({place}): {message}")
        }
    })?;
    de.end().map_err(|e| format!("malformed JSON: {e}"))?;
    Ok(value)
}

/// `parse_json`, then `check` on the value: one message either way, for the caller to prefix
/// with the file name.
pub fn parse_checked<T: serde::de::DeserializeOwned>(
    text: &str,
    check: impl Fn(&T) -> std::result::Result<(), String>,
) -> std::result::Result<T, String> {
    let value = parse_json(text)?;
    check(&value)?;
    Ok(value)
}
