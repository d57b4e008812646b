//! The one binary encoding used on disk and on the wire: bincode 2 (serde
//! adapter, standard config) plus a CRC32 where data rests on disk.

use serde::{de::DeserializeOwned, Serialize};

/// Encodes `value` with bincode's standard configuration.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, bincode::error::EncodeError> {
    bincode::serde::encode_to_vec(value, bincode::config::standard())
}

/// Appends the encoding of `value` to `out`.
pub fn encode_into<T: Serialize>(value: &T, out: &mut Vec<u8>) -> Result<usize, bincode::error::EncodeError> {
    bincode::serde::encode_into_std_write(value, out, bincode::config::standard())
}

/// Decodes a value that must span all of `bytes`.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, bincode::error::DecodeError> {
    let (value, used) = bincode::serde::decode_from_slice(bytes, bincode::config::standard())?;
    if used != bytes.len() {
        return Err(bincode::error::DecodeError::OtherString(format!(
            "{} trailing bytes after value",
            bytes.len() - used
        )));
    }
    Ok(value)
}

/// Maps a codec error into an `io::Error` of kind `InvalidData`.
pub fn invalid_data(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string())
}
