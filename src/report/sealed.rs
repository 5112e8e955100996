//! Sealed checkpoints: a payload written with the identity of what wrote it
//! (the format, the experiment's hash, the cell and the seed group) and a
//! CRC-32 of the payload, so that a truncated, bit-flipped or foreign file is
//! recognised before a byte of it is trusted.
//!
//! Layout: `MBRLSEAL`, then the header (bincode), then the payload; the
//! header records the payload's length and CRC-32.

use crate::report::FORMAT;

const MAGIC: &[u8; 8] = b"MBRLSEAL";

/// Who a checkpoint belongs to.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Identity {
    /// The experiment's hash (the run's identity).
    pub experiment: String,
    pub cell: usize,
    /// The seed group (`seed-3`, `seeds-0-14`).
    pub key: String,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Header {
    format: u32,
    identity: Identity,
    len: u64,
    crc32: u32,
}

/// Why a sealed file cannot be used.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum Unsealed {
    /// Cut short, bytes changed, or not a checkpoint at all.
    #[error("{0}")]
    Damaged(String),
    /// Intact, but written for another experiment, cell or seed group.
    #[error("{0}")]
    Foreign(String),
}

pub fn seal(identity: &Identity, payload: &[u8]) -> Vec<u8> {
    let header = Header {
        format: FORMAT,
        identity: identity.clone(),
        len: payload.len() as u64,
        crc32: crc32fast::hash(payload),
    };
    let mut out = MAGIC.to_vec();
    out.extend(bincode::serialize(&header).expect("a header serialises"));
    out.extend_from_slice(payload);
    out
}

/// The payload of `bytes`, once it is whole, unchanged and `expected`'s.
pub fn unseal<'b>(bytes: &'b [u8], expected: &Identity) -> Result<&'b [u8], Unsealed> {
    let damaged = |why: &str| Unsealed::Damaged(why.to_string());
    let rest = bytes
        .strip_prefix(MAGIC.as_slice())
        .ok_or_else(|| damaged("is not an mbrl checkpoint (or its first bytes were damaged)"))?;
    let mut cursor = std::io::Cursor::new(rest);
    let header: Header =
        bincode::deserialize_from(&mut cursor).map_err(|_| damaged("has a damaged header"))?;
    if header.format != FORMAT {
        return Err(Unsealed::Foreign(format!(
            "was written in checkpoint format {}; this mbrl reads format {FORMAT}",
            header.format
        )));
    }
    let payload = &rest[cursor.position() as usize..];
    if (payload.len() as u64) < header.len {
        return Err(damaged(&format!(
            "is truncated: {} of its {} payload bytes are there",
            payload.len(),
            header.len
        )));
    }
    if payload.len() as u64 != header.len || crc32fast::hash(payload) != header.crc32 {
        return Err(damaged("does not match its checksum: its bytes changed"));
    }
    if header.identity != *expected && header.identity.experiment == expected.experiment {
        let id = &header.identity;
        return Err(Unsealed::Foreign(format!(
            "{MISPLACED} cell {}, {}, lying where cell {}, {} belongs",
            id.cell, id.key, expected.cell, expected.key
        )));
    }
    if header.identity != *expected {
        let id = &header.identity;
        return Err(Unsealed::Foreign(format!(
            "belongs to experiment {} (cell {}, {}), not to this run's experiment {} (cell {}, {})",
            id.experiment, id.cell, id.key, expected.experiment, expected.cell, expected.key
        )));
    }
    Ok(payload)
}

/// How [`unseal`] starts to say that a checkpoint of the right experiment
/// lies in another cell's or seed group's place.
pub const MISPLACED: &str = "is a checkpoint of this experiment's";

/// The keys of the checkpoints in `dir` (its `KEY.bin` files), sorted.
pub fn keys(dir: &std::path::Path) -> std::io::Result<Vec<String>> {
    let mut keys: Vec<String> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_suffix(".bin").map(str::to_string)
        })
        .collect();
    keys.sort();
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> Identity {
        Identity {
            experiment: "abc".into(),
            cell: 2,
            key: "seed-1".into(),
        }
    }

    #[test]
    fn a_sealed_payload_comes_back_only_whole_unchanged_and_own() {
        let payload: Vec<u8> = (0..200u8).collect();
        let bytes = seal(&id(), &payload);
        assert_eq!(unseal(&bytes, &id()).unwrap(), &payload[..]);
        let cut = &bytes[..bytes.len() - 7];
        assert!(matches!(unseal(cut, &id()), Err(Unsealed::Damaged(w)) if w.contains("truncated")));
        for at in [3, 20, bytes.len() - 50] {
            let mut flipped = bytes.clone();
            flipped[at] ^= 0x10;
            assert!(unseal(&flipped, &id()).is_err(), "a flip at byte {at}");
        }
        let other = Identity { cell: 3, ..id() };
        assert!(matches!(unseal(&bytes, &other), Err(Unsealed::Foreign(_))));
    }
}
