// swift-tools-version: 6.1
import PackageDescription

// libFuzzer targets for the decoders that read a peer's bytes. A package of its own, so
// the main build never compiles it and it never resolves the main package's remote
// dependencies: the modules under test are symlinks into ../Sources and build here with
// the fuzzer's coverage instrumentation (see `run`, which passes `--sanitize fuzzer`).
// Their dependencies must match the main Package.swift.
let package = Package(
    name: "roll-fuzz",
    products: [
        .executable(name: "fuzz-wire", targets: ["FuzzWire"]),
        .executable(name: "fuzz-signature", targets: ["FuzzSignature"]),
        .executable(name: "fuzz-patch", targets: ["FuzzPatch"]),
        .executable(name: "fuzz-manifest", targets: ["FuzzManifest"]),
        .executable(name: "fuzz-tar", targets: ["FuzzTar"]),
    ],
    targets: [
        .target(name: "CRollSystem"),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib"),
        .systemLibrary(name: "CZstd", pkgConfig: "libzstd"),
        .systemLibrary(name: "CLibCrypto", pkgConfig: "libcrypto"),
        .target(name: "RollSystem", dependencies: ["CRollSystem"]),
        .target(name: "CRollDelta"),
        .target(name: "RollDelta", dependencies: ["CRollDelta"]),
        .target(name: "RollTree", dependencies: ["CRollSystem", "CLibCrypto", "RollSystem", "RollDelta"]),
        .target(name: "RollWire", dependencies: ["CRollSystem", "CRollDelta", "CZlib", "CZstd", "RollSystem", "RollTree"]),
        .target(name: "RollBundle", dependencies: ["CRollSystem", "CZlib", "CZstd", "RollSystem"]),

        .target(name: "FuzzSupport"),
        .executableTarget(name: "FuzzWire", dependencies: ["FuzzSupport", "RollWire", "RollDelta"]),
        .executableTarget(name: "FuzzSignature", dependencies: ["FuzzSupport", "RollDelta"]),
        .executableTarget(name: "FuzzPatch", dependencies: ["FuzzSupport", "RollDelta", "RollWire"]),
        .executableTarget(name: "FuzzManifest", dependencies: ["FuzzSupport", "RollTree", "RollWire"]),
        .executableTarget(name: "FuzzTar", dependencies: ["CZstd", "FuzzSupport", "RollBundle", "RollSystem"]),
    ]
)
