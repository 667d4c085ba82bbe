/// Rebuilds a new file from its basis and a delta stream fed in chunks of any
/// size (see `DeltaFormat`).
///
/// Copy ops are served by `readBasis`, output goes to `write` as it is
/// produced, and the result is verified against the delta's trailer (length
/// and 128-bit digest) in `finish`. A `DeltaError` with code
/// `.checksumMismatch` there means the output is not the intended file and the
/// caller should fetch it whole. Memory is one 1 MiB copy buffer.
///
/// Every length in the stream is checked before it is used: block length and
/// count limits in the header, copy ops against the basis's block count with
/// checked arithmetic, literal lengths against `DeltaLimits.maxLiteralLength`.
public final class Patcher {
    /// Reads up to `into.count` basis bytes at `offset`; returns how many were
    /// read (fewer only at end of file).
    public typealias BasisReader = (_ offset: Int, _ into: UnsafeMutableRawBufferPointer) throws -> Int
    /// Receives output bytes, valid only during the call.
    public typealias OutputWriter = (UnsafeRawBufferPointer) throws -> Void

    private enum State {
        case header
        case op
        case copyOperands
        case literalLength
        case literalBody(remaining: Int)
        case endOperands
        case done
    }

    private let readBasis: BasisReader
    private let write: OutputWriter
    private var state = State.header
    private var scratch: [UInt8] = []
    private var geometry: BasisGeometry?
    private var hasher = StrongHasher()
    private let checksDigest: Bool
    private var produced = 0
    private let copyBufferSize: Int
    private var copyBuffer: UnsafeMutableRawBufferPointer?

    /// - Parameters:
    ///   - readBasis: serves copy ops from the basis the signature was made of.
    ///   - write: receives the rebuilt file in order.
    ///   - copyBufferSize: bytes read from the basis per call (default 1 MiB).
    ///   - checksDigest: false when the caller checks the output by a digest of its own
    ///     (the agent's SHA-256): `finish` then checks only the length.
    public init(readBasis: @escaping BasisReader, write: @escaping OutputWriter,
                copyBufferSize: Int = 1 << 20, checksDigest: Bool = true) {
        self.readBasis = readBasis
        self.write = write
        self.checksDigest = checksDigest
        self.copyBufferSize = max(copyBufferSize, 4096)
        scratch.reserveCapacity(DeltaFormat.headerLength)
    }

    deinit { copyBuffer?.deallocate() }

    /// Length of the output written so far.
    public var outputLength: Int { produced }

    /// Feeds the next bytes of the delta stream.
    public func update(_ chunk: UnsafeRawBufferPointer) throws {
        guard let base = chunk.baseAddress else { return }
        var i = 0
        let n = chunk.count
        while i < n {
            switch state {
            case .header:
                i += fill(base + i, n - i, upTo: DeltaFormat.headerLength)
                if scratch.count == DeltaFormat.headerLength {
                    try parseHeader()
                    scratch.removeAll(keepingCapacity: true)
                    state = .op
                }
            case .op:
                let op = base.load(fromByteOffset: i, as: UInt8.self)
                i += 1
                switch op {
                case DeltaFormat.opCopy: state = .copyOperands
                case DeltaFormat.opLiteral: state = .literalLength
                case DeltaFormat.opEnd: state = .endOperands
                default: throw DeltaError(.malformedOp, "unknown delta op 0x\(String(op, radix: 16)) at output offset \(produced)")
                }
            case .copyOperands:
                i += fill(base + i, n - i, upTo: DeltaFormat.copyOperandLength)
                if scratch.count == DeltaFormat.copyOperandLength {
                    let (first, count) = scratch.withUnsafeBytes { (readLE32($0, 0), readLE32($0, 4)) }
                    scratch.removeAll(keepingCapacity: true)
                    try copy(first: Int(first), count: Int(count))
                    state = .op
                }
            case .literalLength:
                i += fill(base + i, n - i, upTo: DeltaFormat.literalOperandLength)
                if scratch.count == DeltaFormat.literalOperandLength {
                    let length = Int(scratch.withUnsafeBytes { readLE32($0, 0) })
                    scratch.removeAll(keepingCapacity: true)
                    guard length >= 1, length <= DeltaLimits.maxLiteralLength else {
                        throw DeltaError(.malformedOp, "literal length \(length) outside 1...\(DeltaLimits.maxLiteralLength)")
                    }
                    state = .literalBody(remaining: length)
                }
            case .literalBody(let remaining):
                let take = min(remaining, n - i)
                try output(UnsafeRawBufferPointer(start: base + i, count: take))
                i += take
                state = remaining == take ? .op : .literalBody(remaining: remaining - take)
            case .endOperands:
                i += fill(base + i, n - i, upTo: DeltaFormat.endOperandLength)
                if scratch.count == DeltaFormat.endOperandLength {
                    try verify()
                    state = .done
                }
            case .done:
                throw DeltaError(.trailingData, "\(n - i) bytes after the end of the delta")
            }
        }
    }

    /// Confirms the stream was complete. The whole-file check itself happens
    /// when the end op arrives; this catches a delta cut short.
    public func finish() throws {
        guard case .done = state else {
            throw DeltaError(.truncated, "delta ended early (after \(produced) output bytes)")
        }
    }

    private func fill(_ p: UnsafeRawPointer, _ available: Int, upTo need: Int) -> Int {
        let take = min(need - scratch.count, available)
        scratch.append(contentsOf: UnsafeRawBufferPointer(start: p, count: take))
        return take
    }

    private func parseHeader() throws {
        try scratch.withUnsafeBytes { buf in
            for i in 0..<4 where buf[i] != DeltaFormat.magic[i] {
                throw DeltaError(.badMagic, "not a roll delta (bad magic)")
            }
            guard buf[4] == DeltaFormat.version else {
                throw DeltaError(.unsupportedVersion, "unsupported delta version \(buf[4])")
            }
            guard buf[5] == 0, buf[6] == 0, buf[7] == 0 else {
                throw DeltaError(.invalidHeader, "delta reserved bytes are not zero")
            }
            geometry = try BasisGeometry(blockLength: readLE32(buf, 8), basisLength: readLE64(buf, 12), what: "delta")
            hasher = StrongHasher(seed: readLE64(buf, 20))
        }
    }

    private func output(_ bytes: UnsafeRawBufferPointer) throws {
        let (total, overflow) = produced.addingReportingOverflow(bytes.count)
        guard !overflow else { throw DeltaError(.malformedOp, "delta output length overflows") }
        produced = total
        if checksDigest { hasher.update(bytes) }
        try write(bytes)
    }

    private func copy(first: Int, count: Int) throws {
        guard let g = geometry else { throw DeltaError(.misuse, "copy before header") }
        // first and count come from u32 fields, so the sum cannot overflow Int;
        // the bound stops reads past the basis (rsync CVE-2024-12085 class).
        guard count >= 1, first + count <= g.blockCount else {
            throw DeltaError(.copyOutOfRange, "copy of blocks \(first)..<\(first + count) but the basis has \(g.blockCount)")
        }
        // blockCount <= 2^24 and blockLength <= 2^20: products stay < 2^44.
        var offset = first * g.blockLength
        var left = min(count * g.blockLength, g.basisLength - offset)
        let buffer: UnsafeMutableRawBufferPointer
        if let copyBuffer { buffer = copyBuffer } else {
            buffer = .allocate(byteCount: copyBufferSize, alignment: 64)
            copyBuffer = buffer
        }
        while left > 0 {
            let want = min(left, buffer.count)
            var got = 0
            while got < want {
                let r = try readBasis(offset + got, UnsafeMutableRawBufferPointer(rebasing: buffer[got..<want]))
                guard r > 0, r <= want - got else {
                    throw DeltaError(.basisShort, "basis ends at \(offset + got) but the delta copies up to \(offset + left)")
                }
                got += r
            }
            try output(UnsafeRawBufferPointer(rebasing: buffer[0..<want]))
            offset += want
            left -= want
        }
    }

    private func verify() throws {
        let (length, low, high) = scratch.withUnsafeBytes { (readLE64($0, 0), readLE64($0, 8), readLE64($0, 16)) }
        guard length == UInt64(produced) else {
            throw DeltaError(.checksumMismatch, "rebuilt file has \(produced) bytes, delta says \(length)")
        }
        guard !checksDigest || hasher.finalize() == Digest128(low: low, high: high) else {
            throw DeltaError(.checksumMismatch, "rebuilt file does not match the delta's whole-file digest")
        }
    }
}
