enum Byte {
    static let newline: UInt8 = 0x0A
    static let carriageReturn: UInt8 = 0x0D
    static let space: UInt8 = 0x20
    static let bang: UInt8 = 0x21
    static let hash: UInt8 = 0x23
    static let star: UInt8 = 0x2A
    static let minus: UInt8 = 0x2D
    static let dot: UInt8 = 0x2E
    static let slash: UInt8 = 0x2F
    static let colon: UInt8 = 0x3A
    static let question: UInt8 = 0x3F
    static let openBracket: UInt8 = 0x5B
    static let backslash: UInt8 = 0x5C
    static let closeBracket: UInt8 = 0x5D
    static let caret: UInt8 = 0x5E
}

/// The path being tested, with the offset of its last component computed once for all rules.
struct Subject {
    let text: UnsafeBufferPointer<UInt8>
    let nameStart: Int
    let isDirectory: Bool
}

struct PatternError: Error {
    let message: String
}

struct Rule: Sendable {
    private enum Matcher: Sendable {
        /// Pattern without a slash: tested against the last component at any depth.
        case name(Glob)
        /// Pattern with a leading or inner slash: tested against the whole path relative to the base.
        case path([Segment])
    }

    let negated: Bool
    let directoryOnly: Bool
    private let matcher: Matcher

    init(pattern: ArraySlice<UInt8>, negated: Bool) throws(PatternError) {
        var body = pattern
        var directoryOnly = false
        if body.last == Byte.slash {
            directoryOnly = true
            body = body.dropLast()
        }
        var anchored = false
        if body.first == Byte.slash {
            anchored = true
            body = body.dropFirst()
        }
        guard !body.isEmpty else { throw PatternError(message: "empty pattern") }

        // Split on unescaped and escaped slashes alike: `\/` still denotes the separator.
        var pieces: [ArraySlice<UInt8>] = []
        var pieceStart = body.startIndex
        var index = body.startIndex
        while index < body.endIndex {
            if body[index] == Byte.slash {
                pieces.append(body[pieceStart..<index])
                index += 1
                pieceStart = index
            } else if body[index] == Byte.backslash, index + 1 < body.endIndex, body[index + 1] == Byte.slash {
                pieces.append(body[pieceStart..<index])
                index += 2
                pieceStart = index
            } else if body[index] == Byte.backslash {
                index += 2
            } else {
                index += 1
            }
        }
        // A lone trailing backslash stays in the last piece, where the component compiler rejects it.
        pieces.append(body[pieceStart..<min(index, body.endIndex)])

        self.negated = negated
        self.directoryOnly = directoryOnly
        if pieces.count == 1, !anchored {
            matcher = .name(try Glob(pieces[0]))
            return
        }
        var segments: [Segment] = []
        for piece in pieces {
            if piece.count == 2, piece.first == Byte.star, piece.last == Byte.star {
                if case .anyDepth = segments.last { continue }
                segments.append(.anyDepth)
            } else {
                segments.append(.component(try Glob(piece)))
            }
        }
        // A trailing `/**` matches everything inside, but not the directory itself.
        if case .anyDepth = segments.last {
            segments.insert(.component(.anything), at: segments.count - 1)
        }
        matcher = .path(segments)
    }

    func matches(_ subject: Subject, relativeStart: Int) -> Bool {
        if directoryOnly, !subject.isDirectory { return false }
        switch matcher {
        case .name(let glob):
            return glob.matches(subject.text, subject.nameStart, subject.text.count)
        case .path(let segments):
            return Self.match(segments, subject.text, relativeStart)
        }
    }

    /// Matches whole components against segments; `**` absorbs any number of components.
    ///
    /// Each non-`**` segment consumes exactly one component, so retrying only from the most recent `**`
    /// is complete, and the cost stays proportional to segments times components.
    private static func match(_ segments: [Segment], _ text: UnsafeBufferPointer<UInt8>, _ start: Int) -> Bool {
        let end = text.count
        // `position` is the start of the next unmatched component; `end + 1` means none is left.
        var position = start
        var segment = 0
        var retrySegment = -1
        var retryPosition = 0
        while position <= end {
            if segment < segments.count {
                switch segments[segment] {
                case .anyDepth:
                    retrySegment = segment
                    retryPosition = position
                    segment += 1
                    continue
                case .component(let glob):
                    let componentEnd = nextSlash(text, from: position)
                    if glob.matches(text, position, componentEnd) {
                        segment += 1
                        position = componentEnd + 1
                        continue
                    }
                }
            }
            guard retrySegment >= 0 else { return false }
            retryPosition = nextSlash(text, from: retryPosition) + 1
            position = retryPosition
            segment = retrySegment + 1
        }
        while segment < segments.count, case .anyDepth = segments[segment] { segment += 1 }
        return segment == segments.count
    }

    private static func nextSlash(_ text: UnsafeBufferPointer<UInt8>, from start: Int) -> Int {
        var index = start
        while index < text.count, text[index] != Byte.slash { index += 1 }
        return index
    }
}

private enum Segment: Sendable {
    /// A `**` between slashes: zero or more whole components.
    case anyDepth
    case component(Glob)
}

/// A compiled pattern for a single path component (no `/` on either side).
private enum Glob: Sendable {
    case literal([UInt8])
    /// `*` followed by literal bytes, the usual `*.ext` shape.
    case suffix([UInt8])
    /// Literal bytes followed by `*`.
    case prefix([UInt8])
    case anything
    case general([Token])

    enum Token: Sendable {
        case byte(UInt8)
        case anyByte
        case star
        case set(ByteSet)
    }

    init(_ source: ArraySlice<UInt8>) throws(PatternError) {
        var tokens: [Token] = []
        var index = source.startIndex
        while index < source.endIndex {
            let byte = source[index]
            index += 1
            switch byte {
            case Byte.backslash:
                guard index < source.endIndex else { throw PatternError(message: "trailing backslash") }
                tokens.append(.byte(source[index]))
                index += 1
            case Byte.question:
                tokens.append(.anyByte)
            case Byte.star:
                // Runs of asterisks inside a component behave as one `*`.
                if case .star = tokens.last { continue }
                tokens.append(.star)
            case Byte.openBracket:
                tokens.append(.set(try ByteSet(bracket: source, after: &index)))
            default:
                tokens.append(.byte(byte))
            }
        }
        self = Self.specialized(tokens)
    }

    private static func specialized(_ tokens: [Token]) -> Glob {
        func literalBytes(_ slice: ArraySlice<Token>) -> [UInt8]? {
            var bytes: [UInt8] = []
            bytes.reserveCapacity(slice.count)
            for token in slice {
                guard case .byte(let byte) = token else { return nil }
                bytes.append(byte)
            }
            return bytes
        }
        if let bytes = literalBytes(tokens[...]) { return .literal(bytes) }
        if case .star = tokens.first {
            if tokens.count == 1 { return .anything }
            if let bytes = literalBytes(tokens.dropFirst()) { return .suffix(bytes) }
        }
        if case .star = tokens.last, let bytes = literalBytes(tokens.dropLast()) { return .prefix(bytes) }
        return .general(tokens)
    }

    /// Whether the bytes `text[start..<end]` match.
    func matches(_ text: UnsafeBufferPointer<UInt8>, _ start: Int, _ end: Int) -> Bool {
        switch self {
        case .anything:
            return true
        case .literal(let bytes):
            return end - start == bytes.count && Self.equal(bytes, text, start)
        case .suffix(let bytes):
            return end - start >= bytes.count && Self.equal(bytes, text, end - bytes.count)
        case .prefix(let bytes):
            return end - start >= bytes.count && Self.equal(bytes, text, start)
        case .general(let tokens):
            return Self.match(tokens, text, start, end)
        }
    }

    private static func equal(_ bytes: [UInt8], _ text: UnsafeBufferPointer<UInt8>, _ start: Int) -> Bool {
        bytes.withUnsafeBufferPointer { bytes in
            for index in 0..<bytes.count where bytes[index] != text[start + index] { return false }
            return true
        }
    }

    /// Classic wildcard matching that, on a mismatch, retries only from the most recent `*`.
    /// That is complete because every other token consumes exactly one byte, and it is O(pattern × text).
    private static func match(_ tokens: [Token], _ text: UnsafeBufferPointer<UInt8>, _ start: Int, _ end: Int) -> Bool {
        var token = 0
        var position = start
        var retryToken = -1
        var retryPosition = 0
        while position < end {
            if token < tokens.count {
                switch tokens[token] {
                case .star:
                    retryToken = token
                    retryPosition = position
                    token += 1
                    continue
                case .anyByte:
                    token += 1
                    position += 1
                    continue
                case .byte(let byte):
                    if text[position] == byte {
                        token += 1
                        position += 1
                        continue
                    }
                case .set(let set):
                    if set.contains(text[position]) {
                        token += 1
                        position += 1
                        continue
                    }
                }
            }
            guard retryToken >= 0 else { return false }
            retryPosition += 1
            position = retryPosition
            token = retryToken + 1
        }
        while token < tokens.count, case .star = tokens[token] { token += 1 }
        return token == tokens.count
    }
}

/// A set of bytes, as 256 bits.
private struct ByteSet: Sendable {
    private var w0: UInt64 = 0
    private var w1: UInt64 = 0
    private var w2: UInt64 = 0
    private var w3: UInt64 = 0

    init() {}

    init(predicate: (UInt8) -> Bool) {
        for byte in UInt8.min...UInt8.max where predicate(byte) { insert(byte) }
    }

    func contains(_ byte: UInt8) -> Bool {
        let bit = UInt64(1) << UInt64(byte & 63)
        switch byte >> 6 {
        case 0: return w0 & bit != 0
        case 1: return w1 & bit != 0
        case 2: return w2 & bit != 0
        default: return w3 & bit != 0
        }
    }

    mutating func insert(_ byte: UInt8) {
        let bit = UInt64(1) << UInt64(byte & 63)
        switch byte >> 6 {
        case 0: w0 |= bit
        case 1: w1 |= bit
        case 2: w2 |= bit
        default: w3 |= bit
        }
    }

    mutating func formUnion(_ other: ByteSet) {
        w0 |= other.w0
        w1 |= other.w1
        w2 |= other.w2
        w3 |= other.w3
    }

    mutating func invert() {
        w0 = ~w0
        w1 = ~w1
        w2 = ~w2
        w3 = ~w3
    }

    /// Parses a bracket expression; `index` points just past the `[` and is left just past the closing `]`.
    ///
    /// Supports `!`/`^` negation, a leading `]` taken literally, ranges, backslash escapes and the POSIX
    /// classes such as `[:digit:]`. A reversed range matches nothing, as in git.
    init(bracket source: ArraySlice<UInt8>, after index: inout Int) throws(PatternError) {
        let unterminated = PatternError(message: "unterminated character class")
        var negate = false
        if index < source.endIndex, source[index] == Byte.bang || source[index] == Byte.caret {
            negate = true
            index += 1
        }
        var first = true
        while true {
            guard index < source.endIndex else { throw unterminated }
            var low = source[index]
            if low == Byte.closeBracket, !first {
                index += 1
                break
            }
            first = false
            if low == Byte.openBracket, index + 1 < source.endIndex, source[index + 1] == Byte.colon,
               let close = Self.classEnd(source, from: index + 2) {
                guard let named = Self.named(source[(index + 2)..<close]) else {
                    throw PatternError(message: "unknown character class")
                }
                formUnion(named)
                index = close + 2
                continue
            }
            if low == Byte.backslash {
                index += 1
                guard index < source.endIndex else { throw unterminated }
                low = source[index]
            }
            index += 1
            if index + 1 < source.endIndex, source[index] == Byte.minus, source[index + 1] != Byte.closeBracket {
                var high = source[index + 1]
                index += 2
                if high == Byte.backslash {
                    guard index < source.endIndex else { throw unterminated }
                    high = source[index]
                    index += 1
                }
                if low <= high {
                    for byte in low...high { insert(byte) }
                }
            } else {
                insert(low)
            }
        }
        if negate { invert() }
    }

    /// The index of the `:` of the `:]` that closes a POSIX class name starting at `start`.
    private static func classEnd(_ source: ArraySlice<UInt8>, from start: Int) -> Int? {
        var index = start
        while index + 1 < source.endIndex {
            if source[index] == Byte.colon, source[index + 1] == Byte.closeBracket { return index }
            if source[index] == Byte.closeBracket { return nil }
            index += 1
        }
        return nil
    }

    private static func named(_ name: ArraySlice<UInt8>) -> ByteSet? {
        func isUpper(_ b: UInt8) -> Bool { b >= 0x41 && b <= 0x5A }
        func isLower(_ b: UInt8) -> Bool { b >= 0x61 && b <= 0x7A }
        func isDigit(_ b: UInt8) -> Bool { b >= 0x30 && b <= 0x39 }
        func isAlpha(_ b: UInt8) -> Bool { isUpper(b) || isLower(b) }
        func isGraph(_ b: UInt8) -> Bool { b > 0x20 && b < 0x7F }
        switch String(decoding: name, as: UTF8.self) {
        case "alnum": return ByteSet { isAlpha($0) || isDigit($0) }
        case "alpha": return ByteSet(predicate: isAlpha)
        case "blank": return ByteSet { $0 == 0x20 || $0 == 0x09 }
        case "cntrl": return ByteSet { $0 < 0x20 || $0 == 0x7F }
        case "digit": return ByteSet(predicate: isDigit)
        case "graph": return ByteSet(predicate: isGraph)
        case "lower": return ByteSet(predicate: isLower)
        case "print": return ByteSet { isGraph($0) || $0 == 0x20 }
        case "punct": return ByteSet { isGraph($0) && !isAlpha($0) && !isDigit($0) }
        case "space": return ByteSet { $0 == 0x20 || ($0 >= 0x09 && $0 <= 0x0D) }
        case "upper": return ByteSet(predicate: isUpper)
        case "xdigit": return ByteSet { isDigit($0) || ($0 >= 0x41 && $0 <= 0x46) || ($0 >= 0x61 && $0 <= 0x66) }
        default: return nil
        }
    }
}
