#if canImport(Glibc)
import Glibc
#endif

/// One file of a target's seed corpus.
public struct Seed {
    public var name: String
    public var bytes: [UInt8]

    public init(_ name: String, _ bytes: [UInt8]) {
        self.name = name
        self.bytes = bytes
    }
}

/// Called from a target's `LLVMFuzzerInitialize`: with the arguments `--write-seeds DIR`
/// the target writes `seeds` into DIR (a file `seed-<name>` each) and exits instead of
/// fuzzing. Any other arguments are libFuzzer's.
public func writeSeedsIfAsked(_ seeds: () throws -> [Seed]) {
    let args = CommandLine.arguments
    guard args.count == 3 && args[1] == "--write-seeds" else { return }
    do {
        for seed in try seeds() { try write(seed.bytes, to: args[2] + "/seed-" + seed.name) }
    } catch {
        printError("\(args[0]): \(error)")
        exit(1)
    }
    exit(0)
}

struct WriteError: Error, CustomStringConvertible {
    var description: String
}

private func write(_ bytes: [UInt8], to path: String) throws {
    guard let f = fopen(path, "wb") else { throw WriteError(description: "cannot create \(path)") }
    defer { fclose(f) }
    let n = bytes.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, f) }
    guard n == bytes.count else { throw WriteError(description: "cannot write \(path)") }
}

/// The input as an array (libFuzzer passes nil for an empty one).
public func input(_ data: UnsafePointer<UInt8>?, _ size: Int) -> [UInt8] {
    guard let data, size > 0 else { return [] }
    return Array(UnsafeBufferPointer(start: data, count: size))
}

/// Stops the run on a broken invariant: libFuzzer keeps the input as a crash.
public func check(_ condition: Bool, _ message: @autoclosure () -> String) {
    if !condition { fail(message()) }
}

public func fail(_ message: String) -> Never {
    printError("invariant broken: \(message)")
    abort()
}

func printError(_ line: String) {
    let text = Array((line + "\n").utf8)
    _ = text.withUnsafeBytes { Glibc.write(2, $0.baseAddress, $0.count) }
}

/// Deterministic bytes for fixed inputs and seeds (SplitMix64), so every run and every
/// seed file is the same.
public struct SplitMix64 {
    var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A value in `0 ..< bound` (bound > 0).
    public mutating func below(_ bound: Int) -> Int { Int(next() % UInt64(bound)) }

    public mutating func bytes(_ count: Int) -> [UInt8] {
        (0..<count).map { _ in UInt8(truncatingIfNeeded: next()) }
    }

    /// A generator seeded from `bytes` (FNV-1a), for choices that must repeat with the input.
    public init(hashing bytes: [UInt8]) {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for b in bytes { h = (h ^ UInt64(b)) &* 0x100_0000_01B3 }
        state = h
    }
}
