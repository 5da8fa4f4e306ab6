// swift-tools-version:5.9
// ChartLink for iOS: the Rust library as an XCFramework (binary target `ChartLinkFFI`, the C module the generated
// Swift calls) and the `ChartLink` target: the generated Swift (Sources/ChartLink/Generated/ChartLink.swift) plus
// the thin shell beside it. Run ./build-xcframework.sh first: it builds the XCFramework and generates the Swift.
import PackageDescription

let package = Package(
    name: "ChartLink",
    platforms: [.iOS(.v15), .macOS(.v12)],
    products: [
        .library(name: "ChartLink", targets: ["ChartLink"]),
    ],
    targets: [
        .binaryTarget(name: "ChartLinkFFI", path: "ChartLinkFFI.xcframework"),
        .target(
            name: "ChartLink",
            dependencies: ["ChartLinkFFI"],
            path: "Sources/ChartLink",
            linkerSettings: [.linkedFramework("Security"), .linkedFramework("SystemConfiguration")]
        ),
    ]
)
