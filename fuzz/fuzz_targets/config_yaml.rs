//! Config files: any text gives a Config or placed errors, never a panic.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use mirrorgate::config::Config;

fuzz_target!(|data: &str| {
    if let Err(errors) = Config::from_yaml(data, Path::new("/nonexistent")) {
        assert!(!errors.0.is_empty());
    }
});
