//! `MountInput::decode` over arbitrary attributes, secrets and permission fields.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rust_azure_provider::mount::MountInput;

fuzz_target!(|data: &[u8]| {
    // Three fields separated by 0xff (never valid UTF-8, so never inside a field).
    let mut parts = data.split(|b| *b == 0xff);
    let attributes = String::from_utf8_lossy(parts.next().unwrap_or_default());
    let secrets = String::from_utf8_lossy(parts.next().unwrap_or_default());
    let permission = String::from_utf8_lossy(parts.next().unwrap_or_default());
    if let Ok(input) = MountInput::decode(
        &attributes,
        &secrets,
        &permission,
        "/var/lib/kubelet/pods/x/volumes/kubernetes.io~csi/v/mount".to_owned(),
        Vec::new(),
    ) {
        assert!(input.default_mode <= 0o777);
        // Debug output must never carry secret values.
        let _ = format!("{input:?}");
    }
});
