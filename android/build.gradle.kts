// ChartLink's Android library: the generated Kotlin bindings, the platform-independent shell (src/portable, also
// compiled and tested on the JVM by `cargo xtask bindings`) and the Android adapters (src/main): Keystore, Custom
// Tabs, lifecycle. The native library comes from build-rust.sh (cargo-ndk, one .so per ABI) and the Kotlin
// bindings from the workspace's pinned uniffi-bindgen; both land under build/ and are never committed.
//
// Needs the Android SDK + NDK, Rust with the Android targets and cargo-ndk (see build-rust.sh). Repositories are in
// settings.gradle.kts; an app that includes this module needs the same ones (rustls-platform-verifier's included).

plugins {
    id("com.android.library") version "8.7.3"
    id("org.jetbrains.kotlin.android") version "2.1.0"
}

val rustOut = layout.buildDirectory.dir("rust")

android {
    namespace = "dev.chartlink.sdk"
    compileSdk = 35

    defaultConfig {
        minSdk = 26
        consumerProguardFiles("consumer-rules.pro")
    }

    sourceSets["main"].apply {
        java.srcDirs("src/main/kotlin", "src/portable/kotlin", rustOut.map { it.dir("kotlin") })
        jniLibs.srcDir(rustOut.map { it.dir("jniLibs") })
    }

    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }
}

kotlin {
    jvmToolchain(17)
}

// Builds libchartlink_ffi.so for each ABI and generates the Kotlin bindings from it, before any compilation.
val buildRust by tasks.registering(Exec::class) {
    description = "cargo-ndk build of chartlink-ffi for every ABI + uniffi-bindgen Kotlin"
    workingDir = projectDir
    commandLine("./build-rust.sh", rustOut.get().asFile.absolutePath)
    inputs.files(fileTree("../core/src"), fileTree("../bindings/src"), "../Cargo.lock")
    outputs.dir(rustOut)
}
tasks.named("preBuild") { dependsOn(buildRust) }

// rustls-platform-verifier (the TLS verifier of core's HTTP client) checks certificates with Android's
// TrustManager through a small Kotlin component. Its version must equal that of the crate
// rustls-platform-verifier-android in Cargo.lock, so it is read from there.
val rustlsPlatformVerifier: Provider<String> =
    providers.fileContents(layout.projectDirectory.file("../Cargo.lock")).asText.map { lock ->
        val lines = lock.lines()
        val at = lines.indexOfFirst { it.trim() == "name = \"rustls-platform-verifier-android\"" }
        val version = lines.drop(at + 1).firstOrNull { it.trimStart().startsWith("version = ") }
            ?.substringAfter('"')?.substringBefore('"')
        require(at >= 0 && version != null) { "rustls-platform-verifier-android is not in Cargo.lock" }
        "rustls:rustls-platform-verifier:$version"
    }

dependencies {
    // The generated bindings load the library with JNA (the aar carries JNA's native parts for each ABI).
    implementation("net.java.dev.jna:jna:5.14.0@aar")
    implementation("org.jetbrains.kotlinx:kotlinx-coroutines-android:1.8.1")
    implementation("androidx.browser:browser:1.8.0")
    implementation("androidx.lifecycle:lifecycle-process:2.8.7")
    implementation(rustlsPlatformVerifier)
}
