// Builds android/ on its own (`gradle :assembleRelease` here). An app including this module as a subproject needs
// the same plugin versions (here, not in the module: the app's build decides them once) and repositories.
import groovy.json.JsonSlurper

pluginManagement {
    repositories {
        google()
        mavenCentral()
        gradlePluginPortal()
    }
    plugins {
        id("com.android.library") version "8.12.0"
        // The Kotlin that `cargo xtask ci` compiles android/ with (kotlinc from npm kotlin-compiler).
        id("org.jetbrains.kotlin.android") version "2.4.20"
    }
}

// rustls-platform-verifier (the TLS verifier of core's HTTP client) checks certificates with Android's TrustManager
// through a small Kotlin component, an aar whose version must be that of the crate rustls-platform-verifier-android
// in the Rust build. The crate is found the way the verifier's README says (cargo metadata). When the crate ships a
// Maven repository folder (maven/), that folder is the repository and the coordinates are read from its
// maven-metadata.xml. Release 0.2.0 ships none: its aar is published in the upstream project's Maven archive, whose
// maven-metadata.xml names group org.rustls, artifact rustls-platform-verifier, version = the crate's version.
val verifierCrate: File = run {
    val json = providers.exec {
        workingDir = rootDir.resolve("..")
        commandLine("cargo", "metadata", "--format-version", "1", "--filter-platform", "aarch64-linux-android")
    }.standardOutput.asText.get()
    @Suppress("UNCHECKED_CAST")
    val packages = (JsonSlurper().parseText(json) as Map<String, Any?>)["packages"] as List<Map<String, Any?>>
    val crate = packages.firstOrNull { it["name"] == "rustls-platform-verifier-android" }
        ?: error("rustls-platform-verifier-android is not in the Android dependency graph (cargo metadata)")
    File(crate["manifest_path"] as String).parentFile
}
val verifierLocalRepo: File? = verifierCrate.resolve("maven").takeIf { it.isDirectory }
val verifierCoordinates: String =
    verifierLocalRepo?.walkTopDown()?.firstOrNull { it.name == "maven-metadata.xml" }?.readText()?.let { xml ->
        fun tag(name: String) = Regex("<$name>\\s*([^<]+?)\\s*</$name>").find(xml)?.groupValues?.get(1)
            ?: error("no <$name> in the verifier's maven-metadata.xml")
        "${tag("groupId")}:${tag("artifactId")}:${tag("release")}"
    } ?: "org.rustls:rustls-platform-verifier:${verifierCrate.name.removePrefix("rustls-platform-verifier-android-")}"
gradle.extensions.extraProperties["chartlink.rustlsPlatformVerifier"] = verifierCoordinates

dependencyResolutionManagement {
    repositories {
        google()
        mavenCentral()
        maven {
            url = verifierLocalRepo?.toURI()
                ?: uri("https://github.com/rustls/rustls-platform-verifier/raw/maven-archive/android-release-support/maven/")
            metadataSources { mavenPom(); artifact() }
            content { includeModule("org.rustls", "rustls-platform-verifier") }
        }
    }
}

rootProject.name = "chartlink-android"
