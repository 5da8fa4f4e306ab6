// swift-tools-version:5.9
// ChartLink for iOS: the Rust library as the C module `ChartLinkFFI` (what the generated Swift calls) and the
// `ChartLinkKit` target: the generated Swift (Sources/ChartLinkKit/Generated/ChartLinkKit.swift, never committed)
// plus the thin shell beside it.
//
// - On a Mac: run ./build-xcframework.sh first. `ChartLinkFFI` is the XCFramework (iOS devices, aarch64-apple-ios,
//   and the iOS simulator, arm64 + x86_64). There is no macOS slice, so the package does not claim macOS.
// - On Linux (`cargo xtask swift`): `ChartLinkFFI` is a system library: Sources/ChartLinkFFI's module map and the
//   generated header that xtask copies beside it, linked against the host build of libchartlink_ffi.so, whose
//   directory xtask passes (`-Xlinker -L<target>/debug`). The Apple-only files of ChartLinkKit compile to nothing
//   there (`#if canImport(...)`); the rest is built and tested against the real library and the sandbox.
//
// The module is `ChartLinkKit` (`import ChartLinkKit`) so that the SDK's `ChartLink` type never clashes with the
// module's name. `ChartLinkSample` is the README's Swift quickstart, compiled so that it cannot rot.
import PackageDescription

#if os(Linux)
let ffi: Target = .systemLibrary(name: "ChartLinkFFI", path: "Sources/ChartLinkFFI")
#else
let ffi: Target = .binaryTarget(name: "ChartLinkFFI", path: "ChartLinkFFI.xcframework")
#endif

let package = Package(
    name: "ChartLinkKit",
    platforms: [.iOS(.v15)],
    products: [
        .library(name: "ChartLinkKit", targets: ["ChartLinkKit"]),
    ],
    targets: [
        ffi,
        .target(
            name: "ChartLinkKit",
            dependencies: ["ChartLinkFFI"],
            path: "Sources/ChartLinkKit",
            linkerSettings: [
                .linkedFramework("Security", .when(platforms: [.iOS])),
                .linkedFramework("SystemConfiguration", .when(platforms: [.iOS])),
                .linkedFramework("LocalAuthentication", .when(platforms: [.iOS])),
                .linkedFramework("AuthenticationServices", .when(platforms: [.iOS])),
            ]
        ),
        .target(
            name: "ChartLinkSample",
            dependencies: ["ChartLinkKit"],
            path: "Sources/ChartLinkSample"
        ),
        .testTarget(
            name: "ChartLinkKitTests",
            dependencies: ["ChartLinkKit", "ChartLinkSample"],
            path: "Tests/ChartLinkKitTests"
        ),
    ]
)
