//! Fuzz target: arbitrary bytes as a CMP request body posted to the reference CA.
//!
//! The CA must never panic and never fail internally on untrusted input: every input is
//! either refused as malformed (HTTP 400) or answered with a PKIMessage (a CMP error for
//! anything that does not carry valid protection).
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

use jpki_kiosk::ca::cmp::CmpOutcome;
use jpki_kiosk::ca::{Ca, Config};

fn ca() -> &'static Ca {
    static CA: OnceLock<Ca> = OnceLock::new();
    CA.get_or_init(|| {
        // One CA for the whole run: key generation is slow, and the store must survive
        // every input anyway. benches/fuzz.sh names the CA its seed requests were made
        // for, so protected seeds verify and the fuzzer starts past the protection check.
        let dir = std::env::var_os("JPKI_FUZZ_CA_DIR")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| std::env::temp_dir().join(format!("jpki-ca-fuzz-{}", std::process::id())));
        Ca::open(Config::new(dir)).expect("CA opens")
    })
}

fuzz_target!(|data: &[u8]| {
    match ca().handle_cmp(data) {
        CmpOutcome::Response(_) | CmpOutcome::Malformed(_) => {}
        CmpOutcome::Internal => panic!("internal failure on untrusted input"),
    }
});
