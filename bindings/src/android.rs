//! Android only: the JNI entry point that lets HTTPS use the Android trust store.
//!
//! Core's HTTP client (reqwest + rustls) verifies certificates with `rustls-platform-verifier`, which on Android
//! calls the platform's TrustManager through JNI and must be given the application context first. The Kotlin
//! shell does that once, before building the SDK (`ChartLinkAndroid.create` calls `initTls`). Without it every
//! HTTPS request fails (and the verifier's panic surfaces as `ChartLinkError.Internal`).

use jni::EnvUnowned;
use jni::objects::{JClass, JObject};

/// `dev.chartlink.sdk.android.ChartLinkAndroid.initTls(context)`. A JNI failure is thrown to Kotlin as a
/// RuntimeException; a panic never unwinds into the JVM (`with_env` catches it).
// The JVM finds the function by this exact symbol name; the body is safe Rust.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub extern "system" fn Java_dev_chartlink_sdk_android_ChartLinkAndroid_initTls<'caller>(
    mut unowned_env: EnvUnowned<'caller>,
    _class: JClass<'caller>,
    context: JObject<'caller>,
) {
    unowned_env
        .with_env(|env| -> Result<(), jni::errors::Error> {
            rustls_platform_verifier::android::init_with_env(env, context)
        })
        .resolve::<jni::errors::ThrowRuntimeExAndDefault>()
}
