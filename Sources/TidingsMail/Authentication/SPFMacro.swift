import TidingsDNS

/// SPF macro strings (RFC 7208 §7): `%{d}`, `%{i}`, `%{l1r-}` and the escapes `%%`, `%_`, `%-`.
enum SPFMacro {
    /// The values macros expand to while a record is evaluated.
    struct Context: Sendable {
        /// The sender's local part and domain (`%{l}`, `%{o}`, `%{s}`).
        var senderLocal: String
        var senderDomain: String
        /// `%{d}`: the domain whose record is being evaluated.
        var domain: String
        /// `%{i}`, `%{v}`.
        var ip: IPAddress
        /// `%{h}`: the name the client gave in HELO/EHLO.
        var helo: String
    }

    static let letters: Set<Character> = ["s", "l", "o", "d", "i", "p", "h", "v"]
    /// Only in `exp=` explanations.
    static let explanationLetters: Set<Character> = ["c", "r", "t"]
    static let delimiters: Set<Character> = [".", "-", "+", ",", "/", "_", "="]

    /// Checks the macro syntax of `text`.
    static func validate(_ text: String, term: String, allowExplanationLetters: Bool) throws(SPFSyntaxError) {
        _ = try parse(text, term: term, allowExplanationLetters: allowExplanationLetters)
    }

    /// Checks a domain-spec: macro syntax, and for a literal domain that it is a name of two
    /// or more labels (a receiver may treat anything else as no match: a warning).
    static func validateDomainSpec(_ text: String, term: String, warnings: inout [String]) throws(SPFSyntaxError) {
        let pieces = try parse(text, term: term, allowExplanationLetters: false)
        guard pieces.allSatisfy({ if case .literal = $0 { true } else { false } }) else { return }
        let name = text.hasSuffix(".") ? String(text.dropLast()) : text
        let labels = name.split(separator: ".", omittingEmptySubsequences: false)
        let isName = labels.count >= 2 && labels.allSatisfy { (1...63).contains($0.count) } && (try? DNSName(name)) != nil
            && labels.last!.contains(where: \.isLetter)
        if !isName {
            warnings.append("'\(text)' in \(term) is not a fully qualified domain name; receivers may treat it as no match.")
        }
    }

    enum Piece: Equatable {
        case literal(String)
        case macro(letter: Character, uppercase: Bool, keep: Int?, reverse: Bool, delimiters: Set<Character>)
    }

    static func parse(_ text: String, term: String, allowExplanationLetters: Bool) throws(SPFSyntaxError) -> [Piece] {
        var pieces: [Piece] = []
        var literal = ""
        var index = text.startIndex
        func fail(_ message: String) -> SPFSyntaxError { SPFSyntaxError(message, term: term) }
        while index < text.endIndex {
            let character = text[index]
            guard character == "%" else {
                guard character.isASCII, let value = character.asciiValue, (0x21...0x7E).contains(value) else {
                    throw fail("A macro string holds only visible ASCII characters.")
                }
                literal.append(character)
                index = text.index(after: index)
                continue
            }
            let next = text.index(after: index)
            guard next < text.endIndex else { throw fail("A '%' ends the value; write '%%' for a percent sign.") }
            switch text[next] {
            case "%": literal.append("%")
            case "_": literal.append(" ")
            case "-": literal.append("%20")
            case "{":
                guard let close = text[next...].firstIndex(of: "}") else { throw fail("A macro '%{' is not closed with '}'.") }
                var body = text[text.index(after: next)..<close]
                guard let letter = body.first else { throw fail("The macro '%{}' names no letter.") }
                let lower = Character(letter.lowercased())
                guard letters.contains(lower) || (allowExplanationLetters && explanationLetters.contains(lower)) else {
                    throw fail("'%{\(letter)' is not a macro letter here (s, l, o, d, i, p, h, v).")
                }
                body = body.dropFirst()
                let digits = body.prefix(while: { $0.isASCII && $0.isNumber })
                body = body.dropFirst(digits.count)
                var keep: Int?
                if !digits.isEmpty {
                    guard let value = Int(digits), value >= 1, value <= 128 else { throw fail("A macro keeps 1 to 128 parts; got '\(digits)'.") }
                    keep = value
                }
                var reverse = false
                if body.first == "r" || body.first == "R" {
                    reverse = true
                    body = body.dropFirst()
                }
                guard body.allSatisfy({ delimiters.contains($0) }) else {
                    throw fail("'\(body)' in a macro is not a list of delimiters (. - + , / _ =).")
                }
                if !literal.isEmpty {
                    pieces.append(.literal(literal))
                    literal = ""
                }
                pieces.append(.macro(letter: lower, uppercase: letter.isUppercase, keep: keep, reverse: reverse, delimiters: Set(body)))
                index = text.index(after: close)
                continue
            default:
                throw fail("'%\(text[next])' is not a macro; write '%%' for a percent sign.")
            }
            index = text.index(after: next)
        }
        if !literal.isEmpty { pieces.append(.literal(literal)) }
        return pieces
    }

    static func hasMacros(_ text: String) -> Bool {
        text.contains("%")
    }

    /// The domain-spec with its macros expanded (RFC 7208 §7.3), shortened from the left to
    /// at most 253 characters (§7.3's final rule).
    static func expandDomain(_ text: String, _ context: Context) throws(SPFSyntaxError) -> String {
        var expanded = ""
        for piece in try parse(text, term: text, allowExplanationLetters: false) {
            switch piece {
            case .literal(let literal):
                expanded += literal
            case .macro(let letter, let uppercase, let keep, let reverse, let delimiters):
                let value: String = switch letter {
                case "s": "\(context.senderLocal)@\(context.senderDomain)"
                case "l": context.senderLocal
                case "o": context.senderDomain
                case "d": context.domain
                case "i": context.ip.spfMacroText
                case "v": context.ip.bitCount == 32 ? "in-addr" : "ip6"
                case "h": context.helo
                default: "unknown"  // %{p}: Tidings does not validate reverse names for macros.
                }
                let splitters = delimiters.isEmpty ? ["."] : delimiters
                var parts = value.split(whereSeparator: { splitters.contains($0) }).map(String.init)
                if reverse { parts.reverse() }
                if let keep, parts.count > keep { parts = Array(parts.suffix(keep)) }
                let joined = parts.joined(separator: ".")
                expanded += uppercase ? urlEscaped(joined) : joined
            }
        }
        var labels = expanded.split(separator: ".", omittingEmptySubsequences: false)
        while labels.joined(separator: ".").utf8.count > 253, labels.count > 1 { labels.removeFirst() }
        return labels.joined(separator: ".")
    }

    static func urlEscaped(_ text: String) -> String {
        var result = ""
        for byte in text.utf8 {
            let character = Character(UnicodeScalar(byte))
            if character.isASCII, character.isLetter || character.isNumber || "-._~".contains(character) {
                result.append(character)
            } else {
                result += "%" + String(byte, radix: 16, uppercase: true).leftPadded(to: 2)
            }
        }
        return result
    }
}

extension String {
    func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
