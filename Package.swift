// swift-tools-version: 6.1
import PackageDescription

// One target per layer; imports only point down this list (README, "Inside"):
//   RollSystem  (syscalls through one funnel, byte paths, *at helpers, one child process type,
//                accounts, atomic writes, the clock; its C shims are not re-exported)
//   RollDelta   (hot core: rolling checksum, signatures, deltas; stdlib only, plus CRollDelta,
//                its AVX2 miss path in C, which also holds the aligner RollWire's patches use)
//   RollTree    (walking a source tree, content hashes, manifests)
//   RollWire    (framed messages, handshake, limits, compression: zstd on the wire, gzip for files,
//                patches)
//   RollStore   (releases, staging, publish/switch, rollback, retention, lock)
//   RollBundle  (tar streams in and out, safely unpacked; gzip and zstd detected)
//   RollSSH     (libssh2: session, host keys, auth, exec channels, SFTP)
//   RollSession (the two sides of a push over any byte stream)
//   RollConfig  (the TOML reader; roll.toml and agent.toml, validated where they are read)
//   RollReport  (deploy records, audit log, status file, outbox, HTTP delivery)
//   RollAgent   (the agent around the receiver: hooks, health check, link, privilege drop,
//                releases from folders, tar streams and bundles, rollback with hooks)
//   RollClient  (the client around the sender: transports, SSH host-key policy and
//                self-install, the fleet barrier, a push API)
//   roll        (commands, option groups, terminal output and prompts, exit codes)
// RollAgent and RollClient never import each other. Linux only: the agent and the client
// both work through Linux system calls (renameat2, close_range, copy_file_range, /proc).
let package = Package(
    name: "roll",
    products: [
        .executable(name: "roll", targets: ["roll"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        .target(name: "CRollSystem"),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        .systemLibrary(name: "CZstd", pkgConfig: "libzstd", providers: [.apt(["libzstd-dev"])]),
        .systemLibrary(name: "CLibSSH2", pkgConfig: "libssh2", providers: [.apt(["libssh2-1-dev"])]),
        .systemLibrary(name: "CLibCrypto", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"])]),
        .systemLibrary(name: "CLibSSL", pkgConfig: "libssl", providers: [.apt(["libssl-dev"])]),
        .target(name: "RollSystem", dependencies: ["CRollSystem"]),
        .target(name: "CRollDelta"),
        .target(name: "RollDelta", dependencies: ["CRollDelta"]),
        .target(
            name: "RollTree",
            dependencies: ["CRollSystem", "CLibCrypto", "RollSystem", "RollDelta"]
        ),
        .target(name: "RollWire", dependencies: ["CRollSystem", "CRollDelta", "CZlib", "CZstd", "RollSystem", "RollTree"]),
        .target(name: "RollStore", dependencies: ["CRollSystem", "RollSystem", "RollDelta", "RollTree"]),
        .target(name: "RollBundle", dependencies: ["CRollSystem", "CZlib", "CZstd", "RollSystem"]),
        .target(name: "RollSSH", dependencies: ["CRollSystem", "CLibSSH2", "CLibCrypto", "RollSystem"]),
        .target(name: "RollSession", dependencies: ["CRollSystem", "RollSystem", "RollDelta", "RollTree", "RollWire", "RollStore"]),
        .target(name: "RollConfig", dependencies: ["RollSystem", "RollTree"]),
        .target(
            name: "RollReport",
            dependencies: [
                "CRollSystem", "CLibSSL", "RollSystem", "RollConfig", "RollStore",
            ]
        ),
        .target(
            name: "RollAgent",
            dependencies: ["RollSystem", "RollTree", "RollWire", "RollStore", "RollBundle", "RollSession", "RollConfig", "RollReport"]
        ),
        .target(
            name: "RollClient",
            dependencies: ["RollSystem", "RollTree", "RollWire", "RollSession", "RollSSH", "RollConfig"]
        ),
        .executableTarget(
            name: "roll",
            dependencies: [
                "RollSystem", "RollDelta", "RollTree", "RollWire", "RollStore", "RollSession", "RollBundle",
                "RollConfig", "RollReport", "RollAgent", "RollClient",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .target(name: "RollTestSupport", dependencies: ["RollSystem", "RollTree"], path: "Tests/RollTestSupport"),
        .testTarget(name: "RollSystemTests", dependencies: ["RollSystem", "RollTestSupport"]),
        .testTarget(name: "RollDeltaTests", dependencies: ["RollDelta"]),
        .testTarget(name: "RollTreeTests", dependencies: ["RollTree", "RollTestSupport"]),
        .testTarget(name: "RollWireTests", dependencies: ["RollWire", "RollTestSupport"]),
        .testTarget(name: "RollStoreTests", dependencies: ["RollStore", "RollTestSupport"]),
        .testTarget(name: "RollSSHTests", dependencies: ["RollSSH", "RollTestSupport"]),
        .testTarget(name: "RollConfigTests", dependencies: ["RollConfig", "RollSystem"]),
        .testTarget(name: "RollReportTests", dependencies: ["RollReport", "RollSystem", "RollTestSupport"]),
        .testTarget(name: "RollAgentTests", dependencies: ["RollAgent", "RollSession", "RollStore", "RollSystem", "RollTestSupport"]),
        .testTarget(name: "RollClientTests", dependencies: ["RollClient", "RollSSH", "RollTree", "RollSystem", "RollTestSupport"]),
        .testTarget(
            name: "RollIntegrationTests",
            dependencies: ["RollSystem", "RollDelta", "RollTree", "RollWire", "RollStore", "RollSession", "RollClient", "RollTestSupport"]
        ),
    ]
)
