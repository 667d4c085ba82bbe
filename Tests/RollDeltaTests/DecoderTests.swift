import Testing
@testable import RollDelta

/// Decoders see bytes from the network: they must throw, never trap.
@Suite struct DecoderTests {
    static func sample() throws -> (basis: [UInt8], new: [UInt8], sig: Signature, delta: [UInt8]) {
        var rng = SplitMix64(seed: 77)
        let basis = rng.bytes(700)
        var new = basis
        new.insert(contentsOf: rng.bytes(40), at: 300)
        new += rng.bytes(20)
        let sig = try Signature(basis: basis, blockLength: 64, seed: 12345)
        return (basis, new, sig, try DeltaEncoder.delta(signature: sig, new: new))
    }

    @Test func signatureRoundTrips() throws {
        var rng = SplitMix64(seed: 8)
        for strong in DeltaLimits.minStrongLength...DeltaLimits.maxStrongLength {
            let sig = try Signature(basis: rng.bytes(rng.int(0...3000)), blockLength: 100,
                                    strongLength: strong, seed: rng.next())
            let decoded = try Signature(decoding: sig.encode())
            #expect(decoded == sig)
        }
    }

    @Test func everyTruncatedSignatureThrows() throws {
        let encoded = try Self.sample().sig.encode()
        for cut in 0..<encoded.count {
            #expect(throws: DeltaError.self) { try Signature(decoding: encoded[0..<cut]) }
        }
        #expect(throws: DeltaError.self) { try Signature(decoding: encoded + [0]) }
    }

    @Test func everyTruncatedDeltaThrows() throws {
        let s = try Self.sample()
        #expect(try Patcher.patch(basis: s.basis, delta: s.delta) == s.new)
        for cut in 0..<s.delta.count {
            #expect(throws: DeltaError.self) { try Patcher.patch(basis: s.basis, delta: Array(s.delta[0..<cut])) }
        }
        #expect(throws: DeltaError.self) { try Patcher.patch(basis: s.basis, delta: s.delta + [0]) }
    }

    @Test func randomBytesThrow() {
        var rng = SplitMix64(seed: 99)
        for i in 0..<3000 {
            var bytes = rng.bytes(rng.int(0...120))
            // Give a third of the inputs a valid magic and version so the
            // fields behind them get exercised too.
            if i % 3 == 1 && bytes.count >= 5 { bytes.replaceSubrange(0..<5, with: SignatureFormat.magic + [1]) }
            if i % 3 == 2 && bytes.count >= 5 { bytes.replaceSubrange(0..<5, with: DeltaFormat.magic + [1]) }
            #expect(throws: DeltaError.self) { try Signature(decoding: bytes) }
            #expect(throws: DeltaError.self) { try Patcher.patch(basis: [1, 2, 3], delta: bytes) }
        }
    }

    @Test func mutatedDeltaThrowsOrStillRebuildsExactly() throws {
        let s = try Self.sample()
        var rng = SplitMix64(seed: 5)
        for i in 0..<s.delta.count {
            var bad = s.delta
            bad[i] ^= UInt8(rng.int(1...255))
            do {
                let out = try Patcher.patch(basis: s.basis, delta: bad)
                #expect(out == s.new, "byte \(i)")
            } catch let e as DeltaError {
                _ = e
            }
        }
    }

    @Test func corruptedLiteralIsAChecksumMismatch() throws {
        let s = try Self.sample()
        // The first literal's body starts after header, op byte and length.
        var bad = s.delta
        let literalOp = bad[DeltaFormat.headerLength...].firstIndex(of: DeltaFormat.opLiteral)!
        bad[literalOp + 5] ^= 0xFF
        #expect(throws: DeltaError(.checksumMismatch, "rebuilt file does not match the delta's whole-file digest")) {
            try Patcher.patch(basis: s.basis, delta: bad)
        }
    }

    @Test func changedBasisIsAChecksumMismatch() throws {
        let s = try Self.sample()
        var basis = s.basis
        basis[10] ^= 1
        do {
            _ = try Patcher.patch(basis: basis, delta: s.delta)
            Issue.record("patched a changed basis without noticing")
        } catch let e as DeltaError {
            #expect(e.code == .checksumMismatch)
        }
        // A basis shorter than the delta expects.
        do {
            _ = try Patcher.patch(basis: Array(s.basis.prefix(100)), delta: s.delta)
            Issue.record("patched a short basis")
        } catch let e as DeltaError {
            #expect(e.code == .basisShort)
        }
    }

    static func sigHeader(strong: UInt8 = 8, block: UInt32 = 64, length: UInt64 = 0) -> [UInt8] {
        var h = SignatureFormat.magic + [SignatureFormat.version, strong, 0, 0]
        appendLE(&h, block)
        appendLE(&h, length)
        appendLE(&h, UInt64(0))
        return h
    }

    static func deltaHeader(block: UInt32 = 64, length: UInt64 = 640) -> [UInt8] {
        var h = DeltaFormat.magic + [DeltaFormat.version, 0, 0, 0]
        appendLE(&h, block)
        appendLE(&h, length)
        appendLE(&h, UInt64(0))
        return h
    }

    static func code(_ body: () throws -> Void) -> DeltaError.Code? {
        do { try body() } catch let e as DeltaError { return e.code } catch { return nil }
        return nil
    }

    @Test func hostileSignatureHeaders() {
        // Block length 0 with data (division by zero / endless loop class).
        #expect(Self.code { _ = try Signature(decoding: Self.sigHeader(block: 0, length: 100)) } == .invalidHeader)
        // Oversized strong length (CVE-2024-12084 class) and zero.
        #expect(Self.code { _ = try Signature(decoding: Self.sigHeader(strong: 17) + [UInt8](repeating: 0, count: 21)) } == .invalidHeader)
        #expect(Self.code { _ = try Signature(decoding: Self.sigHeader(strong: 0)) } == .invalidHeader)
        // Oversized block length.
        #expect(Self.code { _ = try Signature(decoding: Self.sigHeader(block: UInt32(DeltaLimits.maxBlockLength + 1))) } == .invalidHeader)
        // Counts that overflow or exceed the limit must fail before allocating.
        #expect(Self.code { _ = try Signature(decoding: Self.sigHeader(block: 8, length: .max)) } == .invalidHeader)
        #expect(Self.code { _ = try Signature(decoding: Self.sigHeader(block: 8, length: UInt64(DeltaLimits.maxBlockCount) * 8 + 1)) } == .invalidHeader)
        // Within limits but the body is missing.
        #expect(Self.code { _ = try Signature(decoding: Self.sigHeader(block: 8, length: UInt64(DeltaLimits.maxBlockCount) * 8)) } == .truncated)
        // Reserved bytes, magic, version.
        var h = Self.sigHeader(); h[6] = 1
        #expect(Self.code { _ = try Signature(decoding: h) } == .invalidHeader)
        h = Self.sigHeader(); h[0] = 0
        #expect(Self.code { _ = try Signature(decoding: h) } == .badMagic)
        h = Self.sigHeader(); h[4] = 2
        #expect(Self.code { _ = try Signature(decoding: h) } == .unsupportedVersion)
    }

    @Test func shortLastBlockOnlyMatchesTheTail() throws {
        // The last block is declared short but carries a full block's sums (a collision,
        // or a hostile agent): a full window matching it would copy too few bytes.
        var rng = SplitMix64(seed: 31)
        let basis = rng.bytes(640)
        var bytes = try Signature(basis: basis, blockLength: 64).encode()
        var length: [UInt8] = []
        appendLE(&length, UInt64(630))
        bytes.replaceSubrange(12..<20, with: length)
        let delta = try DeltaEncoder.delta(signature: try Signature(decoding: bytes), new: basis)
        #expect(try Patcher.patch(basis: Array(basis.prefix(630)), delta: delta) == basis)
    }

    @Test func hostileDeltaOps() {
        func copy(_ first: UInt32, _ count: UInt32) -> [UInt8] {
            var op: [UInt8] = [DeltaFormat.opCopy]
            appendLE(&op, first)
            appendLE(&op, count)
            return op
        }
        func literal(_ length: UInt32) -> [UInt8] {
            var op: [UInt8] = [DeltaFormat.opLiteral]
            appendLE(&op, length)
            return op
        }
        let basis = [UInt8](repeating: 7, count: 640)
        func patch(_ d: [UInt8]) -> DeltaError.Code? { Self.code { _ = try Patcher.patch(basis: basis, delta: d) } }
        let h = Self.deltaHeader()
        #expect(patch(h + copy(10, 1)) == .copyOutOfRange)              // past the end
        #expect(patch(h + copy(9, 2)) == .copyOutOfRange)
        #expect(patch(h + copy(0, 0)) == .copyOutOfRange)               // empty copy
        #expect(patch(h + copy(.max, .max)) == .copyOutOfRange)         // sum overflows u32
        #expect(patch(h + literal(0)) == .malformedOp)
        #expect(patch(h + literal(UInt32(DeltaLimits.maxLiteralLength) + 1)) == .malformedOp)
        #expect(patch(h + literal(.max)) == .malformedOp)
        #expect(patch(h + [0x7F]) == .malformedOp)
        #expect(patch(Self.deltaHeader(block: 0, length: 640)) == .invalidHeader)
        #expect(patch(Self.deltaHeader(block: 8, length: .max)) == .invalidHeader)
        #expect(patch(h + literal(5)) == .truncated)
        // Basis shorter than the header claims.
        #expect(patch(Self.deltaHeader(block: 64, length: 6400) + copy(50, 1)) == .basisShort)
        // Length mismatch in the trailer.
        var end: [UInt8] = [DeltaFormat.opEnd]
        appendLE(&end, UInt64(1))
        end += [UInt8](repeating: 0, count: 16)
        #expect(patch(h + end) == .checksumMismatch)
    }
}
