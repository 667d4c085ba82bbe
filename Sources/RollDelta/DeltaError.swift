/// Why a signature or delta could not be built, decoded or applied.
///
/// Decoders report every problem with their input through this type; they
/// never trap on hostile bytes. A `checksumMismatch` from patching means the
/// rebuilt file is not the one the delta describes: the caller should fall
/// back to transferring the file whole.
public struct DeltaError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The class of failure, for callers that branch on it.
    public enum Code: String, Sendable, Equatable {
        /// The stream does not start with the expected magic bytes.
        case badMagic
        /// The version byte names a format this code does not read.
        case unsupportedVersion
        /// A header field is outside the format's limits or inconsistent.
        case invalidHeader
        /// The stream ended before a complete structure was read.
        case truncated
        /// An unknown op code or an op with invalid operands.
        case malformedOp
        /// A copy op names blocks the basis does not have.
        case copyOutOfRange
        /// Bytes follow the end marker.
        case trailingData
        /// The basis could not supply the bytes a copy op needs.
        case basisShort
        /// The rebuilt file's length or digest differs from the delta's trailer.
        case checksumMismatch
        /// An argument given by the caller is outside the limits.
        case invalidArgument
        /// The API was used out of order (e.g. feeding after finish).
        case misuse
    }

    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}
