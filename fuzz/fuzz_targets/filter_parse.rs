//! The filter language (`Filter::parse`) and JSON filters (`Filter::from_json`), see
//! `vecdb::fuzzing::filter_parse`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    vecdb::fuzzing::filter_parse(data);
});
