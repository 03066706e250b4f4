//! Request paths: never a panic; what is accepted has no traversal and is stable.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mirrorgate::http::path::CleanPath;

fuzz_target!(|data: &str| {
    if let Ok(p) = CleanPath::parse(data, 4096) {
        assert!(!p.as_str().split('/').any(|s| s == ".." || s == "."));
        assert!(!p.as_str().contains('\0') && !p.as_str().contains('\\'));
        let again = CleanPath::parse(&format!("/{}", p.encoded()), 8192).expect("re-parses");
        assert_eq!(again, p);
    }
});
