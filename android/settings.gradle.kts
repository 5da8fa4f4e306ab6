// Builds android/ on its own (`gradle :assembleRelease` here). An app including this module as a subproject needs
// the same repositories in its own settings.
pluginManagement {
    repositories {
        google()
        mavenCentral()
        gradlePluginPortal()
    }
}

dependencyResolutionManagement {
    repositories {
        google()
        mavenCentral()
        // rustls-platform-verifier's Kotlin component (see build.gradle.kts).
        maven { url = uri("https://github.com/rustls/rustls-platform-verifier/raw/maven-archive/android-release-support/maven/") }
    }
}

rootProject.name = "chartlink-android"
