// swift-tools-version: 6.1
import PackageDescription

// One target per layer; imports only point down this list:
//   RollSystem (syscalls through one funnel, byte paths, *at helpers)
//   RollDelta  (hot core: rolling checksum, signatures, deltas; stdlib only)
//   RollTree   (walking a source tree, content hashes, manifests)
//   RollWire   (framed messages, handshake, limits, compression: zstd on the wire, gzip for files)
//   RollStore  (releases, staging, publish/switch, rollback, retention, lock)
//   RollBundle (tar streams in and out, safely unpacked; gzip detection)
//   RollSSH    (libssh2: session, host keys, auth, exec channels, SFTP)
//   RollSession (the two sides of a push over any byte stream)
//   roll       (command line; the only place that wires transports)
let package = Package(
    name: "roll",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "roll", targets: ["roll"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.0"),
    ],
    targets: [
        .target(name: "CRollSystem"),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        .systemLibrary(name: "CZstd", pkgConfig: "libzstd", providers: [.apt(["libzstd-dev"])]),
        .systemLibrary(name: "CLibSSH2", pkgConfig: "libssh2", providers: [.apt(["libssh2-1-dev"])]),
        .systemLibrary(name: "CLibCrypto", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"])]),
        .target(name: "RollSystem", dependencies: ["CRollSystem"]),
        .target(name: "RollDelta"),
        .target(
            name: "RollTree",
            dependencies: ["CLibCrypto", "RollSystem", "RollDelta"]
        ),
        .target(name: "RollWire", dependencies: ["CZlib", "CZstd", "RollSystem", "RollTree"]),
        .target(name: "RollStore", dependencies: ["RollSystem", "RollTree"]),
        .target(name: "RollBundle", dependencies: ["CZlib", "RollSystem"]),
        .target(name: "RollSSH", dependencies: ["CLibSSH2", "CLibCrypto", "RollSystem"]),
        .target(name: "RollSession", dependencies: ["RollSystem", "RollDelta", "RollTree", "RollWire", "RollStore"]),
        .executableTarget(
            name: "roll",
            dependencies: [
                "RollSystem", "RollDelta", "RollTree", "RollWire", "RollStore", "RollSession", "RollSSH", "RollBundle",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        .target(name: "RollTestSupport", dependencies: ["RollSystem", "RollTree"], path: "Tests/RollTestSupport"),
        .testTarget(name: "RollDeltaTests", dependencies: ["RollDelta"]),
        .testTarget(name: "RollTreeTests", dependencies: ["RollTree", "RollTestSupport"]),
        .testTarget(name: "RollWireTests", dependencies: ["RollWire", "RollTestSupport"]),
        .testTarget(name: "RollStoreTests", dependencies: ["RollStore", "RollTestSupport"]),
        .testTarget(name: "RollSSHTests", dependencies: ["RollSSH", "RollTestSupport"]),
        .testTarget(
            name: "RollIntegrationTests",
            dependencies: ["roll", "RollSystem", "RollTree", "RollWire", "RollStore", "RollSession", "RollBundle", "RollTestSupport"]
        ),
    ]
)
