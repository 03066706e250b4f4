//! A mirror's answer to a proxied request, as mirrorgate's HTTP/1.1 client
//! reads it (head, interim answers, body framing): nothing panics, and the
//! result does not depend on how the bytes were split into reads.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&first, answer)) = data.split_first() else {
        return;
    };
    let step = usize::from(first) + 1;
    let whole = mirrorgate::proxy::read_answer(answer, usize::MAX);
    assert_eq!(mirrorgate::proxy::read_answer(answer, step), whole);
});
