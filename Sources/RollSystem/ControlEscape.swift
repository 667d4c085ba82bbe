/// `text` with every control character shown as an escape (`\e`, `\r`, `\n`, `\x9b`,
/// `\u{202e}`), safe to print on a terminal and to write as one line of a line-based file.
///
/// Values printed or recorded by roll come from peers (a client's actor and revision, an
/// agent's log lines, errors, release ids), from trees (file names) and from records on
/// disk. Raw, an ESC or a C1 CSI in them drives the reader's terminal (cursor moves, a
/// retitled window, a line erased and written over), and a CR or LF forges a line of its
/// own in a record or a log. Escaped: C0 controls except tab (which only moves the cursor
/// forward on its line), DEL, C1 controls, and the Unicode line separators and bidi
/// overrides that reorder or break what a reader sees. A backslash is kept as it is: the
/// point is that nothing acts on the terminal, and a doubled backslash in every Windows
/// path of a message would help no one.
public func escapeControls(_ text: some StringProtocol) -> String {
    guard text.unicodeScalars.contains(where: needsEscape) else { return String(text) }
    var out = ""
    out.reserveCapacity(text.utf8.count + 16)
    for u in text.unicodeScalars {
        guard needsEscape(u) else {
            out.unicodeScalars.append(u)
            continue
        }
        switch u.value {
        case 0x1B: out += "\\e"
        case 0x0D: out += "\\r"
        case 0x0A: out += "\\n"
        case 0...0xFF:
            let hex = String(u.value, radix: 16)
            out += "\\x" + (hex.count == 1 ? "0" + hex : hex)
        default:
            out += "\\u{" + String(u.value, radix: 16) + "}"
        }
    }
    return out
}

private func needsEscape(_ u: Unicode.Scalar) -> Bool {
    switch u.value {
    case 0x09: return false
    case 0..<0x20, 0x7F...0x9F: return true
    // Line and paragraph separators; bidi marks, embeddings, overrides and isolates.
    case 0x2028, 0x2029, 0x200E, 0x200F, 0x061C, 0x202A...0x202E, 0x2066...0x2069: return true
    default: return false
    }
}
