import Foundation

/// Writes header fields: folded near 78 octets and never over 998, non-ASCII text as RFC 2047
/// encoded words, and every control character (CR and LF above all) turned into a space, so
/// that no value can ever start a header of its own.
struct HeaderWriter {
    private(set) var bytes: [UInt8] = []

    static let foldAt = 78

    /// A structured value written as is (after control characters are removed).
    mutating func add(_ name: String, _ value: String) {
        write(name, words: Self.clean(value).split(separator: " ", omittingEmptySubsequences: true).map(String.init))
    }

    /// Unstructured text (a subject): encoded words when it is not plain printable ASCII.
    mutating func addText(_ name: String, _ text: String) {
        let cleaned = Self.clean(text)
        let words = cleaned.split(separator: " ", omittingEmptySubsequences: false).map(String.init)
        if Self.isPlainASCII(cleaned), words.allSatisfy({ $0.utf8.count <= 900 }), !cleaned.contains("=?") {
            // Runs of spaces are kept; trailing ones are dropped.
            var kept = words
            while kept.last?.isEmpty == true { kept.removeLast() }
            write(name, words: kept)
        } else {
            write(name, words: Self.encodedWords(cleaned))
        }
    }

    mutating func addMailboxes(_ name: String, _ mailboxes: [Mailbox]) {
        var words: [String] = []
        for (index, mailbox) in mailboxes.enumerated() {
            var formatted = Self.mailboxWords(mailbox)
            if index < mailboxes.count - 1 { formatted[formatted.count - 1] += "," }
            words += formatted
        }
        write(name, words: words)
    }

    /// Joins words with single spaces, folding (CRLF + space) before a word that would pass
    /// `foldAt`.
    private mutating func write(_ name: String, words: [String]) {
        let safeName = String(name.unicodeScalars.filter { $0.isASCII && $0.value > 0x20 && $0.value < 0x7F && $0 != ":" })
        var line = "\(safeName):"
        var output = ""
        for word in words {
            // Never fold before an empty word: a continuation line of blanks only is not allowed.
            if !word.isEmpty, line.utf8.count + 1 + word.utf8.count > Self.foldAt, line.utf8.count > safeName.utf8.count + 1 {
                output += line + "\r\n"
                line = " " + word
            } else {
                line += " " + word
            }
        }
        output += line + "\r\n"
        bytes += Array(output.utf8)
    }

    /// Control characters (C0, DEL, C1, line and paragraph separators) become spaces.
    static func clean(_ value: String) -> String {
        String(String.UnicodeScalarView(value.unicodeScalars.map { scalar in
            scalar.value < 0x20 || scalar.value == 0x7F || (0x80...0x9F).contains(scalar.value)
                || scalar.value == 0x2028 || scalar.value == 0x2029 ? " " : scalar
        }))
    }

    static func isPlainASCII(_ text: String) -> Bool {
        text.utf8.allSatisfy { $0 >= 0x20 && $0 < 0x7F }
    }

    /// RFC 2047 `=?UTF-8?B?…?=` words of at most 75 characters, never splitting a character.
    static func encodedWords(_ text: String) -> [String] {
        var words: [String] = []
        var chunk: [UInt8] = []
        for character in text {
            let bytes = Array(String(character).utf8)
            if chunk.count + bytes.count > 45 {
                words.append(encodedWord(chunk))
                chunk = []
            }
            chunk += bytes
        }
        if !chunk.isEmpty || words.isEmpty { words.append(encodedWord(chunk)) }
        return words
    }

    private static func encodedWord(_ bytes: [UInt8]) -> String {
        "=?UTF-8?B?\(Data(bytes).base64EncodedString())?="
    }

    /// Characters a display name may hold without quoting (RFC 5322 atext and spaces).
    private static let atext = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-/=?^_`{|}~ ".unicodeScalars)

    /// `Name <address>`: the name as atoms, a quoted string, or encoded words.
    static func mailboxWords(_ mailbox: Mailbox) -> [String] {
        let address = "<\(mailbox.address.value)>"
        let name = clean(mailbox.displayName).trimmingCharacters(in: .whitespaces)
        guard !name.isEmpty else { return [mailbox.address.value] }
        if !isPlainASCII(name) {
            return encodedWords(name) + [address]
        }
        if name.unicodeScalars.allSatisfy(atext.contains), !name.contains("=?") {
            return name.split(separator: " ").map(String.init) + [address]
        }
        let quoted = name.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
        return ["\"\(quoted)\"", address]
    }

    /// A header parameter: `name="value"`, or RFC 2231 `name*=UTF-8''…` for non-ASCII.
    static func parameter(_ name: String, _ value: String) -> String {
        let cleaned = clean(value)
        if isPlainASCII(cleaned) {
            let quoted = cleaned.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            return "\(name)=\"\(quoted)\""
        }
        let unreserved = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~".utf8)
        let encoded = cleaned.utf8.map { unreserved.contains($0) ? String(UnicodeScalar($0)) : String(format: "%%%02X", $0) }.joined()
        return "\(name)*=UTF-8''\(encoded)"
    }
}

/// Quoted-printable (RFC 2045 §6.7) for text whose lines end in CRLF: encoded lines of at
/// most 76 characters, soft breaks where needed, blanks before a line end encoded.
enum QuotedPrintable {
    static func encode(_ bytes: [UInt8]) -> [UInt8] {
        var output: [UInt8] = []
        output.reserveCapacity(bytes.count + bytes.count / 8)
        var lineLength = 0
        var index = 0
        let hex = Array("0123456789ABCDEF".utf8)
        while index < bytes.count {
            let byte = bytes[index]
            if byte == 0x0D, index + 1 < bytes.count, bytes[index + 1] == 0x0A {
                output += [0x0D, 0x0A]
                lineLength = 0
                index += 2
                continue
            }
            let atLineEnd = index + 1 == bytes.count || (bytes[index + 1] == 0x0D && index + 2 < bytes.count && bytes[index + 2] == 0x0A)
            let literal = (byte >= 33 && byte <= 126 && byte != 0x3D) || ((byte == 0x20 || byte == 0x09) && !atLineEnd)
            let piece: [UInt8] = literal ? [byte] : [0x3D, hex[Int(byte >> 4)], hex[Int(byte & 0x0F)]]
            // Room for the piece and, unless the line ends here, a soft break's '='.
            if lineLength + piece.count > (atLineEnd ? 76 : 75) {
                output += [0x3D, 0x0D, 0x0A]
                lineLength = 0
            }
            output += piece
            lineLength += piece.count
            index += 1
        }
        return output
    }
}
