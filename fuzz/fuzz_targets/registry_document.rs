//! Registry documents as found on disk: any bytes give a document or a
//! placed error, never a panic, and a document read is written back in a
//! form that reads again.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use mirrorgate::registry::parse_document;

fuzz_target!(|data: &[u8]| {
    let path = Path::new("registry.json");
    if let Ok(doc) = parse_document(path, data) {
        let again = serde_json::to_vec_pretty(&doc).expect("a read document encodes");
        parse_document(path, &again).expect("a written document reads again");
    }
});
