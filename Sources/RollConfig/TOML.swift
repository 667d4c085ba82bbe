/// The part of TOML that roll's configuration files use: `key = value` lines and `[table]`
/// headers, with basic and literal strings, integers, booleans and (multi-line) arrays of
/// those, and `#` comments. Anything else is an error that names its line and column.
/// Small on purpose: a full TOML library would bring all of Foundation into the binary.
public enum TOMLValue: Equatable {
    case string(String)
    case integer(Int)
    case boolean(Bool)
    case array([TOMLValue])

    public var string: String? { if case .string(let s) = self { return s } else { return nil } }
    public var integer: Int? { if case .integer(let i) = self { return i } else { return nil } }
    public var array: [TOMLValue]? { if case .array(let a) = self { return a } else { return nil } }
}

public struct TOMLError: Error, CustomStringConvertible {
    public var line: Int
    public var column: Int
    public var message: String
    public var description: String { "\(line):\(column): \(message)" }
}

/// Parses a document into `[dotted.key: value]`, keys of a `[table]` prefixed with its name.
public func parseTOML(_ text: String) throws -> [String: TOMLValue] {
    var parser = TOMLParser(Array(text.unicodeScalars))
    return try parser.document()
}

private struct TOMLParser {
    let s: [Unicode.Scalar]
    var i = 0
    var line = 1
    var lineStart = 0

    init(_ s: [Unicode.Scalar]) { self.s = s }

    func error(_ message: String) -> TOMLError { TOMLError(line: line, column: i - lineStart + 1, message: message) }

    var current: Unicode.Scalar? { i < s.count ? s[i] : nil }

    mutating func advance() {
        if s[i] == "\n" { line += 1; lineStart = i + 1 }
        i += 1
    }

    /// Spaces and tabs; with `newlines`, also line ends and comments.
    mutating func skipBlank(newlines: Bool) {
        while let c = current {
            if c == " " || c == "\t" || c == "\r" { advance() }
            else if c == "#" { while let d = current, d != "\n" { advance() } }
            else if newlines && c == "\n" { advance() }
            else { return }
        }
    }

    mutating func document() throws -> [String: TOMLValue] {
        var out = [String: TOMLValue]()
        var table = ""
        while true {
            skipBlank(newlines: true)
            guard let c = current else { return out }
            if c == "[" {
                advance()
                skipBlank(newlines: false)
                table = try key()
                skipBlank(newlines: false)
                guard current == "]" else { throw error("expected ] after the table name") }
                advance()
            } else {
                let k = try key()
                let full = table.isEmpty ? k : table + "." + k
                skipBlank(newlines: false)
                guard current == "=" else { throw error("expected = after \(k)") }
                advance()
                skipBlank(newlines: false)
                let v = try value()
                guard out[full] == nil else { throw error("\(full) is set twice") }
                out[full] = v
            }
            skipBlank(newlines: false)
            if let c = current, c != "\n" { throw error("unexpected \"\(c)\" after a value (one setting per line)") }
        }
    }

    mutating func key() throws -> String {
        if current == "\"" { return try basicString() }
        var k = ""
        while let c = current, c.properties.isAlphabetic && c.isASCII || ("0"..."9").contains(c) || c == "_" || c == "-" || c == "." {
            k.unicodeScalars.append(c)
            advance()
        }
        guard !k.isEmpty else { throw error("expected a setting name") }
        return k
    }

    mutating func value() throws -> TOMLValue {
        guard let c = current else { throw error("expected a value") }
        switch c {
        case "\"": return .string(try basicString())
        case "'": return .string(try literalString())
        case "[": return try array()
        case "t", "f":
            for (word, v) in [("true", true), ("false", false)] where matches(word) {
                i += word.unicodeScalars.count
                return .boolean(v)
            }
            throw error("expected true or false")
        case "+", "-", "0"..."9":
            var digits = ""
            while let d = current, ("0"..."9").contains(d) || d == "_" || ((d == "+" || d == "-") && digits.isEmpty) {
                if d != "_" { digits.unicodeScalars.append(d) }
                advance()
            }
            guard let n = Int(digits) else { throw error("\(digits) is not a whole number") }
            return .integer(n)
        default:
            throw error("expected a value (a \"string\", a number, true/false or a [list])")
        }
    }

    func matches(_ word: String) -> Bool {
        let w = Array(word.unicodeScalars)
        return i + w.count <= s.count && Array(s[i..<(i + w.count)]) == w
    }

    mutating func array() throws -> TOMLValue {
        advance()
        var items = [TOMLValue]()
        while true {
            skipBlank(newlines: true)
            if current == "]" { advance(); return .array(items) }
            items.append(try value())
            skipBlank(newlines: true)
            if current == "," { advance(); continue }
            guard current == "]" else { throw error("expected , or ] in a list") }
        }
    }

    mutating func basicString() throws -> String {
        advance()
        var out = ""
        while let c = current {
            advance()
            switch c {
            case "\"": return out
            case "\n": throw error("a string must end on its line")
            case "\\":
                guard let e = current else { break }
                advance()
                switch e {
                case "\"": out += "\""
                case "\\": out += "\\"
                case "n": out += "\n"
                case "t": out += "\t"
                case "r": out += "\r"
                case "u", "U":
                    let n = e == "u" ? 4 : 8
                    var hex = ""
                    for _ in 0..<n { if let h = current { hex.unicodeScalars.append(h); advance() } }
                    guard let v = UInt32(hex, radix: 16), let scalar = Unicode.Scalar(v) else { throw error("bad \\\(e) escape") }
                    out.unicodeScalars.append(scalar)
                default: throw error("unknown escape \\\(e)")
                }
            default: out.unicodeScalars.append(c)
            }
        }
        throw error("a string is not closed")
    }

    mutating func literalString() throws -> String {
        advance()
        var out = ""
        while let c = current {
            advance()
            if c == "'" { return out }
            if c == "\n" { throw error("a string must end on its line") }
            out.unicodeScalars.append(c)
        }
        throw error("a string is not closed")
    }
}
