// ChartLink's Android library: the generated Kotlin bindings, the platform-independent shell (src/portable, also
// compiled and tested on the JVM by `cargo xtask bindings`) and the Android adapters (src/main): Keystore, Custom
// Tabs, lifecycle — on the Android framework alone (no AndroidX). The native library comes from build-rust.sh
// (cargo-ndk, one .so per ABI) and the Kotlin bindings from the workspace's pinned uniffi-bindgen; both land under
// build/ and are never committed.
//
// `cargo xtask ci` compiles every .kt file here (src/main, src/portable, src/sample) against android-all 36,
// kotlinx-coroutines-android 1.11.0 and JNA 5.18.1 from Maven Central, and runs src/test with JUnit 5; a Gradle build
// needs the Android SDK + NDK, Rust with the Android targets and cargo-ndk (see build-rust.sh). Plugin versions and
// repositories are in settings.gradle.kts.

plugins {
    id("com.android.library")
    id("org.jetbrains.kotlin.android")
}

val rustOut = layout.buildDirectory.dir("rust")

android {
    namespace = "dev.chartlink.sdk"
    compileSdk = 36

    defaultConfig {
        minSdk = 26
        consumerProguardFiles("consumer-rules.pro")
    }

    sourceSets["main"].apply {
        java.srcDirs("src/main/kotlin", "src/portable/kotlin", rustOut.map { it.dir("kotlin") })
        jniLibs.srcDir(rustOut.map { it.dir("jniLibs") })
    }
    sourceSets["test"].java.srcDirs("src/test/kotlin")

    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }

    testOptions { unitTests.all { it.useJUnitPlatform() } }
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

dependencies {
    // The generated bindings load the library with JNA; the aar carries JNA's native parts for each ABI (5.17+ are
    // 16 KB-page aligned).
    implementation("net.java.dev.jna:jna:5.18.1@aar")
    implementation("org.jetbrains.kotlinx:kotlinx-coroutines-android:1.11.0")
    // Coordinates from the verifier crate's Maven metadata (settings.gradle.kts).
    implementation(gradle.extensions.extraProperties["chartlink.rustlsPlatformVerifier"] as String)

    testImplementation("org.junit.jupiter:junit-jupiter:6.1.3")
    testRuntimeOnly("org.junit.platform:junit-platform-launcher:6.1.3")
}
