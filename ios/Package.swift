// swift-tools-version:5.9
// ChartLink for iOS: the Rust library as an XCFramework (binary target `ChartLinkFFI`, the C module the generated
// Swift calls) and the `ChartLinkKit` target: the generated Swift (Sources/ChartLinkKit/Generated/ChartLinkKit.swift)
// plus the thin shell beside it. Run ./build-xcframework.sh first: it builds the XCFramework and generates the Swift.
//
// Platforms match the XCFramework's slices: iOS devices (aarch64-apple-ios) and the iOS simulator (arm64 + x86_64).
// There is no macOS slice, so the package does not claim macOS. The module is `ChartLinkKit` (`import ChartLinkKit`)
// so that the SDK's `ChartLink` type never clashes with the module's name.
import PackageDescription

let package = Package(
    name: "ChartLinkKit",
    platforms: [.iOS(.v15)],
    products: [
        .library(name: "ChartLinkKit", targets: ["ChartLinkKit"]),
    ],
    targets: [
        .binaryTarget(name: "ChartLinkFFI", path: "ChartLinkFFI.xcframework"),
        .target(
            name: "ChartLinkKit",
            dependencies: ["ChartLinkFFI"],
            path: "Sources/ChartLinkKit",
            linkerSettings: [
                .linkedFramework("Security"),
                .linkedFramework("SystemConfiguration"),
                .linkedFramework("LocalAuthentication"),
                .linkedFramework("AuthenticationServices"),
            ]
        ),
    ]
)
