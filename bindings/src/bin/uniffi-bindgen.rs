//! The workspace's pinned `uniffi-bindgen`: the same uniffi version as the library, so the generated Kotlin and
//! Swift always match the scaffolding they call. `cargo xtask bindings` runs it on the built library.

fn main() {
    uniffi::uniffi_bindgen_main()
}
