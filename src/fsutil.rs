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
/// removes its temporary file and names `path` in the error. A link at `path` is written through
/// (see `write_target`).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let target = write_target(path)?;
    replace(&target, bytes).map_err(|e| Error::io(path, e))
}

/// `write_atomic` for a file of a run directory: a symbolic link at `path` is refused instead of
/// followed, so a link planted in a shared run directory cannot redirect a write outside it.
pub fn write_confined(path: &Path, bytes: &[u8]) -> Result<()> {
    refuse_link(path)?;
    replace(&write_target(path)?, bytes).map_err(|e| Error::io(path, e))
}

/// Creates (or truncates) a log file of a run directory without following a link at `path`.
pub fn create_confined(path: &Path) -> Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    refuse_link(path)?;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| Error::io(path, e))
}

/// Refuses a symbolic link at `path` (a missing path is fine).
pub fn refuse_link(path: &Path) -> Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => Err(Error::run(
            path,
            "is a symbolic link; evolve writes inside a run directory only, and never through a link there (remove the link)",
        )),
        _ => Ok(()),
    }
}

/// The temporary file is created exclusively (`O_CREAT | O_EXCL`, so never through a link
/// planted at its name) under a random name beside `target`, then renamed over it; dropping
/// it on any failure removes it.
fn replace(target: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let dir = target
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        // Like `File::create`: 0666 less the umask, not tempfile's private 0600.
        .permissions(std::fs::Permissions::from_mode(0o666))
        .tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(target).map_err(|e| e.error)?;
    Ok(())
}

/// Serialises `value` as pretty JSON (with a final newline) and writes it atomically.
pub fn write_json_atomic<T: serde::Serialize>(path: &Path, value: &T) -> Result<()> {
    write_atomic(path, json_text(value).as_bytes())
}

/// `write_json_atomic` for a file of a run directory (see `write_confined`).
pub fn write_json_confined<T: serde::Serialize>(path: &Path, value: &T) -> Result<()> {
    write_confined(path, json_text(value).as_bytes())
}

fn json_text<T: serde::Serialize>(value: &T) -> String {
    let mut text = serde_json::to_string_pretty(value).expect("plain data serialises");
    text.push('\n');
    text
}

/// The largest file `read_to_string` reads: far above any genome, config or checkpoint.
pub const MAX_READ_BYTES: u64 = 256 << 20;

/// Reads a regular file of at most `MAX_READ_BYTES` as UTF-8 (see `read_regular`).
pub fn read_to_string(path: &Path) -> Result<String> {
    let bytes = read_regular(path, Some(MAX_READ_BYTES))?;
    String::from_utf8(bytes).map_err(|e| {
        Error::run(
            path,
            format!(
                "is not UTF-8 text (byte {}); evolve reads JSON files",
                e.utf8_error().valid_up_to()
            ),
        )
    })
}

/// Reads a regular file, of at most `cap` bytes when given. A FIFO, a device or a folder is
/// refused without blocking on it (opened non-blocking, checked before reading).
pub fn read_regular(path: &Path, cap: Option<u64>) -> Result<Vec<u8>> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    let meta = file.metadata().map_err(|e| Error::io(path, e))?;
    if !meta.is_file() {
        return Err(Error::run(
            path,
            format!(
                "is a {}, not a regular file; evolve reads genomes, configs and run files from regular files only",
                file_kind(&meta)
            ),
        ));
    }
    let limit = cap.unwrap_or(u64::MAX);
    if meta.len() > limit {
        return Err(too_big(path, meta.len()));
    }
    let mut bytes = Vec::new();
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(path, e))?;
    if bytes.len() as u64 > limit {
        return Err(too_big(path, bytes.len() as u64));
    }
    Ok(bytes)
}

fn too_big(path: &Path, len: u64) -> Error {
    Error::run(
        path,
        format!("holds {len} bytes or more; allowed: at most {MAX_READ_BYTES} bytes (a genome, config or run file is far smaller)"),
    )
}

/// Parses JSON into `T`; the error names the field path, line and column (for the caller to
/// prefix with the file name). Only text that is not JSON is called malformed: a value of the
/// wrong type names its field, what was found and what is allowed.
pub fn parse_json<T: serde::de::DeserializeOwned>(text: &str) -> std::result::Result<T, String> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| {
        let message = e.to_string();
        let message = message
            .rfind(" at line ")
            .map_or(message.as_str(), |i| &message[..i]);
        format!(
            "malformed JSON at line {} column {}: {message}",
            e.line(),
            e.column()
        )
    })?;
    let mut de = serde_json::Deserializer::from_str(text);
    let error = match serde_path_to_error::deserialize::<_, T>(&mut de) {
        Ok(parsed) => return Ok(parsed),
        Err(error) => error,
    };
    let pointer = json_pointer(error.path());
    let path = error.path().to_string();
    let inner = error.into_inner();
    let place = format!("line {} column {}", inner.line(), inner.column());
    let message = match inner.is_syntax() || inner.is_eof() {
        // Valid JSON that serde_json still calls a syntax error: an enum given a non-string.
        true => wrong_type::<T>(&value, &pointer),
        false => {
            let mut message = inner.to_string();
            if let Some(i) = message.rfind(" at line ") {
                message.truncate(i);
            }
            message
        }
    };
    match path.as_str() {
        "." => Err(format!("{message} ({place})")),
        _ => Err(format!("field `{path}` ({place}): {message}")),
    }
}

/// The JSON pointer of a serde path (`protocol.tasks[0].dataset` → `/protocol/tasks/0/dataset`).
fn json_pointer(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    path.iter()
        .filter_map(|segment| match segment {
            Segment::Seq { index } => Some(format!("/{index}")),
            Segment::Map { key } => Some(format!("/{}", key.replace('~', "~0").replace('/', "~1"))),
            Segment::Enum { .. } | Segment::Unknown => None,
        })
        .collect()
}

/// "invalid type: a number, expected one of `fp32`, `bf16`": what stands at `pointer`, and the
/// names allowed there (asked of `T` itself by putting a name there that it cannot know).
fn wrong_type<T: serde::de::DeserializeOwned>(value: &serde_json::Value, pointer: &str) -> String {
    let found = match value.pointer(pointer) {
        Some(serde_json::Value::Null) => "null",
        Some(serde_json::Value::Bool(_)) => "a boolean",
        Some(serde_json::Value::Number(_)) => "a number",
        Some(serde_json::Value::String(_)) => "a string",
        Some(serde_json::Value::Array(_)) => "a list",
        Some(serde_json::Value::Object(_)) => "an object",
        None => "a value",
    };
    let mut probe = value.clone();
    if let Some(slot) = probe.pointer_mut(pointer) {
        *slot = serde_json::Value::String("\u{1}".into());
    }
    let expected = match serde_path_to_error::deserialize::<_, T>(probe) {
        Err(e) => e
            .into_inner()
            .to_string()
            .split_once("expected ")
            .map(|(_, allowed)| allowed.to_string()),
        Ok(_) => None,
    };
    format!(
        "invalid type: {found}, expected {}",
        expected.unwrap_or_else(|| "a value of another type".into())
    )
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
