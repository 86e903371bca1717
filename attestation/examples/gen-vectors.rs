//! Writes the attestation test vectors: `cargo run -p attestation --example gen-vectors [DIR]`
//! (default: `tests/vectors/attestation` at the workspace root).

#![allow(clippy::unwrap_used, missing_docs)]

#[path = "../tests/support/vectors.rs"]
mod vectors;

fn main() {
    let dir = std::env::args()
        .nth(1)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/vectors/attestation")
        });
    std::fs::create_dir_all(&dir).unwrap();
    for (name, bytes) in vectors::generate().files {
        std::fs::write(dir.join(&name), bytes).unwrap();
        println!("wrote {}", dir.join(name).display());
    }
}
