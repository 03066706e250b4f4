//! Manifests from the origin host: any text gives an index or an error naming
//! a line, never a panic; what is accepted writes back to an equal index.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mirrorgate::content::manifest::{parse_manifest, write_index};

fuzz_target!(|data: &str| {
    if let Ok(index) = parse_manifest(data) {
        let mut out = Vec::new();
        write_index(&index, &mut out).expect("writing to memory");
        let text = String::from_utf8(out).expect("manifests are UTF-8");
        let again = parse_manifest(&text).expect("a written manifest parses");
        assert_eq!(again.len(), index.len());
        for (_, path, info) in index.iter() {
            assert_eq!(again.lookup(path).map(|(_, i)| i), Some(info));
        }
    }
});
