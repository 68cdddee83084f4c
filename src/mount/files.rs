//! Output path validation (the driver's atomic-writer rules), modes and object version ids.

/// An output path the driver would reject, or two objects writing one path.
#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    /// Placeholder until validation lands.
    #[error("invalid path")]
    Invalid,
}
