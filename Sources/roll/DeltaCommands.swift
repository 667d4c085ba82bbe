import ArgumentParser
import Glibc
import RollDelta

// rdiff-style commands over the RollDelta core. File I/O is plain POSIX on
// file descriptors with 1 MiB buffers; the core never touches files.

extension Roll {
    struct Signature: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "signature",
            abstract: "Write the block signature of a basis file.",
            discussion: """
            The receiver of an update runs this on the file it already has and \
            sends the (small) signature to the sender, who runs `roll delta`.

            The basis is cut into blocks; each gets a 4-byte rolling checksum \
            and a strong checksum. The block length defaults to about the square \
            root of the file size (512 B to 128 KiB; 32 KiB for 1 GiB), or 8 KiB \
            when reading a pipe whose size is unknown. Smaller blocks find more \
            matches around small edits but make the signature larger.

            Exit status: 0 on success, 1 if a file cannot be read or written, \
            64 on a usage error.
            """
        )

        @Option(name: .customLong("block-size"), help: ArgumentHelp("Block length in bytes (8...1048576).", valueName: "bytes"))
        var blockSize: Int?

        @Option(name: .customLong("strong-size"), help: ArgumentHelp("Bytes of strong checksum kept per block (4...16).", valueName: "bytes"))
        var strongSize: Int = 8

        @Option(name: .customLong("seed"), help: ArgumentHelp("Strong checksum seed; random if omitted.", valueName: "n"))
        var seed: UInt64?

        @Argument(help: ArgumentHelp("Basis file, or - for standard input.", valueName: "basis"))
        var basis: String

        @Argument(help: ArgumentHelp("Signature output, or - for standard output.", valueName: "signature"))
        var signature: String

        func run() throws {
            try reportingErrors {
                let input = try DeltaFile(reading: basis)
                let size = input.regularFileSize
                let length = blockSize ?? (size.map { DeltaLimits.recommendedBlockLength(forFileSize: $0) } ?? 8192)
                var builder = try SignatureBuilder(
                    blockLength: length, strongLength: strongSize,
                    seed: seed ?? UInt64.random(in: .min ... .max), expectedLength: size)
                try input.forEachChunk { try builder.update($0) }
                let encoded = builder.finish().encode()
                let output = try DeltaFile(writing: signature)
                try encoded.withUnsafeBytes { try output.writeAll($0) }
                try output.close()
            }
        }
    }

    struct Delta: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "delta",
            abstract: "Write the delta that turns the signed basis into a new file.",
            discussion: """
            Reads the basis signature made by `roll signature` and the new file, \
            and writes a delta: copy instructions for blocks the receiver already \
            has plus the new file's remaining bytes, ending with the new file's \
            length and 128-bit digest so `roll patch` can verify its output.

            Memory stays bounded whatever the new file's size: the signature's \
            index plus a few MiB of window. SIGNATURE and NEW cannot both be -.

            Exit status: 0 on success, 1 if a file cannot be read or written, \
            2 if the signature is malformed, 64 on a usage error.
            """
        )

        @Flag(name: .shortAndLong, help: "Print match statistics to standard error.")
        var verbose = false

        @Argument(help: ArgumentHelp("Signature of the basis, or - for standard input.", valueName: "signature"))
        var signature: String

        @Argument(help: ArgumentHelp("New file, or - for standard input.", valueName: "new"))
        var new: String

        @Argument(help: ArgumentHelp("Delta output, or - for standard output.", valueName: "delta"))
        var delta: String

        func validate() throws {
            if signature == "-" && new == "-" {
                throw ValidationError("SIGNATURE and NEW cannot both be standard input.")
            }
        }

        func run() throws {
            try reportingErrors {
                let sig = try DeltaFile(reading: signature).readSignature()
                let input = try DeltaFile(reading: new)
                let output = try DeltaFile(writing: delta)
                let writer = BufferedOutput(output)
                let encoder = DeltaEncoder(signature: sig) { try writer.append($0) }
                try input.forEachChunk { try encoder.update($0) }
                try encoder.finish()
                try writer.flush()
                try output.close()
                if verbose {
                    let s = encoder.statistics
                    printError("roll: delta: \(s.matchedBytes) bytes matched in \(s.copyOps) copies, \(s.literalBytes) literal bytes in \(s.literalOps) literals, \(s.deltaBytes) delta bytes")
                }
            }
        }
    }

    struct Patch: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "patch",
            abstract: "Rebuild the new file from the basis and a delta.",
            discussion: """
            Applies a delta made by `roll delta` to the basis it was made against \
            and writes the result. The output's length and digest are checked \
            against the delta's trailer; on a mismatch (wrong or changed basis, \
            corrupted delta) the command fails, removes OUT, and the caller \
            should transfer the file whole instead.

            BASIS must be a regular file (it is read at random offsets). OUT \
            must not be BASIS.

            Exit status: 0 on success, 1 if a file cannot be read or written, \
            2 if the delta is malformed, 3 if the rebuilt file fails \
            verification or the basis is too short, 64 on a usage error.
            """
        )

        @Argument(help: ArgumentHelp("Basis file the signature was made from.", valueName: "basis"))
        var basis: String

        @Argument(help: ArgumentHelp("Delta, or - for standard input.", valueName: "delta"))
        var delta: String

        @Argument(help: ArgumentHelp("Output file, or - for standard output.", valueName: "out"))
        var out: String

        func validate() throws {
            if basis == "-" { throw ValidationError("BASIS must be a file, not standard input.") }
            if out != "-" && out == basis { throw ValidationError("OUT must differ from BASIS.") }
        }

        func run() throws {
            var output: DeltaFile?
            do {
                try reportingErrors {
                    let source = try DeltaFile(reading: basis, sequential: false)
                    let input = try DeltaFile(reading: delta)
                    let file = try DeltaFile(writing: out)
                    output = file
                    let writer = BufferedOutput(file)
                    let patcher = Patcher(
                        readBasis: { offset, into in try source.read(at: offset, into: into) },
                        write: { try writer.append($0) })
                    try input.forEachChunk { try patcher.update($0) }
                    try patcher.finish()
                    try writer.flush()
                    try file.close()
                }
            } catch {
                if let output, output.path != "-" { unlink(output.path) }
                throw error
            }
        }
    }
}

// MARK: - Errors and exit codes

private struct DeltaIOError: Error {
    let message: String
}

/// Turns failures into one line on standard error and the documented exit
/// status, leaving usage errors to the argument parser.
private func reportingErrors(_ body: () throws -> Void) throws {
    do {
        try body()
    } catch let error as DeltaError {
        printError("roll: error: \(error.message)")
        switch error.code {
        case .checksumMismatch, .basisShort: throw ExitCode(3)
        case .invalidArgument, .misuse: throw ExitCode(1)
        default: throw ExitCode(2)
        }
    } catch let error as DeltaIOError {
        printError("roll: error: \(error.message)")
        throw ExitCode(1)
    }
}

private func errnoText() -> String {
    String(cString: strerror(errno))
}

// MARK: - POSIX file access

private final class DeltaFile {
    static let chunkSize = 1 << 20

    let path: String
    let fd: Int32
    private var closed = false

    init(reading path: String, sequential: Bool = true) throws {
        self.path = path
        if path == "-" {
            fd = 0
            closed = true  // never close standard streams
            return
        }
        fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw DeltaIOError(message: "cannot open \(path): \(errnoText())") }
        if sequential { _ = posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL) }
    }

    init(writing path: String) throws {
        self.path = path
        if path == "-" {
            fd = 1
            closed = true
            return
        }
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw DeltaIOError(message: "cannot create \(path): \(errnoText())") }
    }

    deinit { if !closed { Glibc.close(fd) } }

    var displayName: String { path == "-" ? "standard input" : path }

    /// Size if this is a regular file (so block length can follow it).
    var regularFileSize: Int? {
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { return nil }
        return Int(st.st_size)
    }

    /// Reads into `buffer` until it is full or the input ends; returns the count.
    func readFully(_ buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        var got = 0
        while got < buffer.count {
            let r = Glibc.read(fd, buffer.baseAddress! + got, buffer.count - got)
            if r == 0 { break }
            if r < 0 {
                if errno == EINTR { continue }
                throw DeltaIOError(message: "cannot read \(displayName): \(errnoText())")
            }
            got += r
        }
        return got
    }

    func forEachChunk(_ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: Self.chunkSize, alignment: 64)
        defer { buffer.deallocate() }
        while true {
            let n = try readFully(buffer)
            if n == 0 { return }
            try body(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
            if n < buffer.count { return }
        }
    }

    func read(at offset: Int, into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        while true {
            let r = pread(fd, buffer.baseAddress, buffer.count, off_t(offset))
            if r >= 0 { return r }
            if errno != EINTR { throw DeltaIOError(message: "cannot read \(path): \(errnoText())") }
        }
    }

    func writeAll(_ bytes: UnsafeRawBufferPointer) throws {
        var done = 0
        while done < bytes.count {
            let r = Glibc.write(fd, bytes.baseAddress! + done, bytes.count - done)
            if r < 0 {
                if errno == EINTR { continue }
                throw DeltaIOError(message: "cannot write \(path == "-" ? "standard output" : path): \(errnoText())")
            }
            done += r
        }
    }

    func close() throws {
        guard !closed else { return }
        closed = true
        if Glibc.close(fd) != 0 { throw DeltaIOError(message: "cannot close \(path): \(errnoText())") }
    }

    /// Reads a whole signature, checking the header before reading the body
    /// so a forged block count cannot make us buffer an unbounded stream.
    func readSignature() throws -> RollDelta.Signature {
        var bytes = [UInt8](repeating: 0, count: SignatureFormat.headerLength)
        let got = try bytes.withUnsafeMutableBytes { try readFully($0) }
        let header = try bytes.withUnsafeBytes {
            try SignatureHeader(parsing: UnsafeRawBufferPointer(rebasing: $0[0..<got]))
        }
        let bodyLength = header.encodedLength - SignatureFormat.headerLength
        bytes.append(contentsOf: repeatElement(0, count: bodyLength + 1))
        let body = try bytes.withUnsafeMutableBytes {
            try readFully(UnsafeMutableRawBufferPointer(rebasing: $0[SignatureFormat.headerLength...]))
        }
        // One byte more than announced was requested: getting it means trailing data.
        bytes.removeLast(bodyLength + 1 - body)
        return try RollDelta.Signature(decoding: bytes)
    }
}

/// Collects small pieces (op headers) into 1 MiB writes; large pieces go
/// straight through.
private final class BufferedOutput {
    let file: DeltaFile
    let buffer: UnsafeMutableRawBufferPointer
    var used = 0

    init(_ file: DeltaFile) {
        self.file = file
        buffer = .allocate(byteCount: DeltaFile.chunkSize, alignment: 64)
    }

    deinit { buffer.deallocate() }

    func append(_ bytes: UnsafeRawBufferPointer) throws {
        if used + bytes.count > buffer.count { try flush() }
        if bytes.count >= buffer.count / 2 {
            try file.writeAll(bytes)
            return
        }
        (buffer.baseAddress! + used).copyMemory(from: bytes.baseAddress!, byteCount: bytes.count)
        used += bytes.count
    }

    func flush() throws {
        guard used > 0 else { return }
        try file.writeAll(UnsafeRawBufferPointer(rebasing: buffer[0..<used]))
        used = 0
    }
}
