import ArgumentParser
import RollDelta
import RollSystem
#if canImport(Glibc)
import Glibc
#endif

// rdiff-style commands over the RollDelta core, which never touches files: they read and
// write through descriptors in 1 MiB chunks, and fail the way every command does.

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
            try guarded {
                let input = try Descriptor.forReading(basis)
                let size = input.regularFileSize
                let length = blockSize ?? (size.map { DeltaLimits.recommendedBlockLength(forFileSize: $0) } ?? 8192)
                var builder = try SignatureBuilder(
                    blockLength: length, strongLength: strongSize,
                    seed: seed ?? UInt64.random(in: .min ... .max), expectedLength: size)
                try input.forEachChunk(size: chunkSize) { try builder.update($0) }
                try Descriptor.forWriting(signature).write(builder.finish().encode())
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
            try guarded {
                let source = try Descriptor.forReading(signature)
                let sig = try RollDelta.Signature.read { try source.readFully(into: $0) }
                let input = try Descriptor.forReading(new)
                let writer = ThreadedWriter(try Descriptor.forWriting(delta))
                let encoder = DeltaEncoder(signature: sig) { try writer.append($0) }
                do {
                    try input.forEachChunk(size: chunkSize) { try encoder.update($0) }
                    try encoder.finish()
                    try writer.finish()
                } catch {
                    writer.abandon()
                    throw error
                }
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
            corrupted delta) the command fails, removes OUT (a regular file), and the caller \
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
            try guarded {
                let source = try Descriptor.forReading(basis, sequential: false)
                let input = try Descriptor.forReading(delta)
                let writer = ThreadedWriter(try Descriptor.forWriting(out))
                do {
                    let patcher = Patcher(
                        readBasis: { offset, into in try source.pread(into: into, at: Int64(offset)) },
                        write: { try writer.append($0) })
                    try input.forEachChunk(size: chunkSize) { try patcher.update($0) }
                    try patcher.finish()
                    try writer.finish()
                } catch {
                    writer.abandon()
                    // Only a file this command wrote: never a device or a pipe named as OUT.
                    if out != "-" && writer.file.regularFileSize != nil { unlink(out) }
                    throw error
                }
            }
        }
    }
}

private let chunkSize = 1 << 20
