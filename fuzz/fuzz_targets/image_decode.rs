//! The project's image decode entry, `features::decode_bytes`, with its guards (file size,
//! format sniffing, a pixel budget checked against the header before allocating, the decode
//! watchdog, caught decoder panics) and EXIF orientation; then the preprocessing every
//! extractor starts with. Errors are fine; a panic that escapes, an abort, a leak past the RSS
//! limit or a timeout is a finding.
#![no_main]

use std::path::Path;
use std::sync::Once;
use std::time::Duration;

use features::preprocess::{resize_center_crop, to_gray, ResizeFilter};
use features::DecodeLimits;

static HOOK: Once = Once::new();

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    // libfuzzer-sys aborts on every panic, even one the decoder's guard catches and reports
    // as FeatureError::Decode (its documented behaviour): put the default hook back, so that
    // only panics that escape `decode_bytes` (caught by fuzz_target!, then abort) are findings.
    HOOK.call_once(|| drop(std::panic::take_hook()));
    // A per-request budget like the server's (16 Mpixel, 8 MiB); decoding on this thread (no
    // watchdog: a slow decode is a libFuzzer timeout, a finding).
    let limits = DecodeLimits { max_file_bytes: 8 << 20, max_pixels: 16_000_000, time_budget: Duration::ZERO };
    if let Ok(img) = features::decode_bytes(data, Path::new("fuzz-input"), &limits) {
        assert_eq!((img.image.width(), img.image.height()), (img.width, img.height));
        let small = resize_center_crop(&img.image, 32, 32, ResizeFilter::Bilinear);
        let _ = to_gray(&small);
    }
});
