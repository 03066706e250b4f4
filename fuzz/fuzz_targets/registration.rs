//! Registration requests from the admin API: any body gives a mirror or
//! field errors, never a panic, and an accepted URL is plain http(s).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mirrorgate::registry::validate::parse_registration;

fuzz_target!(|data: &[u8]| {
    match parse_registration(data) {
        Ok(reg) => {
            let url = &reg.mirror.url;
            assert!(matches!(url.scheme(), "http" | "https"));
            assert!(url.username().is_empty() && url.password().is_none());
            assert!(url.query().is_none() && url.fragment().is_none());
        }
        Err(errors) => assert!(!errors.is_empty()),
    }
});
