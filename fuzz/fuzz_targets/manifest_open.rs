//! `vecdb::fuzzing::manifest_open`: see that function for what the input is. Errors are fine; panics,
//! aborts, leaks past the RSS limit and timeouts are findings.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = vecdb::fuzzing::manifest_open(data);
});
