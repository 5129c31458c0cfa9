import Foundation

/// An email address in the one canonical form Tidings stores, compares and sends to.
///
/// Contacts are keyed by address, so two spellings of one mailbox must become one
/// value. The raw input is therefore normalised before it is checked:
///
/// 1. Surrounding whitespace is trimmed.
/// 2. Everything is lowercased. Strictly, only the domain is case-insensitive, but
///    no mailbox provider in use distinguishes `Ann@` from `ann@`, and treating
///    them as two contacts would send duplicates and split unsubscribes.
/// 3. Unicode is put into NFC, so a precomposed `é` and `e` + combining accent
///    are the same address.
/// 4. A quoted local part that does not need its quotes loses them
///    (`"john.doe"@example.com` becomes `john.doe@example.com`), and a needed one
///    keeps only the escapes it needs, because both spellings name one mailbox.
///
/// The normalised address must then be an RFC 5322 `addr-spec` as SMTP can carry it:
///
/// - The local part is a dot-atom (letters, digits, ``allowedLocalPartSymbols``,
///   and non-ASCII characters as RFC 6531 allows, without leading, trailing or
///   consecutive dots) or a quoted string (printable ASCII, spaces and non-ASCII
///   characters; `\` escapes a following printable ASCII character).
/// - Non-ASCII characters that are invisible or not characters at all (control,
///   format, whitespace, private-use, unassigned) are rejected anywhere, because
///   they make two different addresses look the same.
/// - The domain has at least two labels separated by dots; each label is 1–63
///   octets of letters (including non-ASCII letters for internationalised domains),
///   digits and hyphens, and does not start or end with a hyphen; the last label is
///   not all digits. Domain literals such as `[192.0.2.1]` are not accepted.
/// - RFC 5321 limits, counted in UTF-8 octets: local part ≤ 64, domain ≤ 255,
///   whole address ≤ 254.
///
/// Errors are `invalid_email` and their messages never repeat the address, because
/// it is personal data that would otherwise end up in logs and client screens.
public struct EmailAddress: Hashable, Sendable, CustomStringConvertible, Codable {
    /// The longest local part SMTP servers must accept (RFC 5321 §4.5.3.1.1).
    public static let maxLocalPartOctets = 64
    /// The longest domain name (RFC 5321 §4.5.3.1.2).
    public static let maxDomainOctets = 255
    /// The longest address that fits in a `MAIL FROM`/`RCPT TO` path (RFC 5321 §4.5.3.1.3).
    public static let maxAddressOctets = 254
    /// The longest label of a domain name (RFC 1035).
    public static let maxLabelOctets = 63
    /// The ASCII symbols RFC 5322 allows in an unquoted local part, besides letters and digits.
    public static let allowedLocalPartSymbols = "!#$%&'*+-/=?^_`{|}~"

    /// The normalised address, e.g. `ann.smith+news@example.com`.
    public let value: String

    /// Normalises and validates `raw`.
    ///
    /// - Parameter field: the input field named in the error, e.g. `email` or `rcpt`.
    /// - Throws: ``DomainError`` `invalid_email` saying which rule was broken.
    public init(_ raw: String, field: String = "email") throws(DomainError) {
        let normalised = Self.normalised(raw)
        guard !normalised.isEmpty else {
            throw Self.invalid("The email address is empty.", field)
        }

        let scalars = Array(normalised.unicodeScalars)
        let localPart: String
        let domainStart: Int
        if scalars.first == "\"" {
            let quoted = try Self.parseQuotedLocalPart(scalars, field)
            localPart = quoted.localPart
            domainStart = quoted.atIndex + 1
        } else {
            guard let at = scalars.firstIndex(of: "@") else {
                throw Self.invalid("The email address must contain an @ between the local part and the domain.", field)
            }
            localPart = try Self.checkedDotAtomLocalPart(scalars[..<at], field)
            domainStart = at + 1
        }
        let domain = try Self.checkedDomain(scalars[domainStart...], field)

        guard localPart.utf8.count <= Self.maxLocalPartOctets else {
            throw Self.invalid("The part before the @ is longer than \(Self.maxLocalPartOctets) octets.", field)
        }
        guard domain.utf8.count <= Self.maxDomainOctets else {
            throw Self.invalid("The domain is longer than \(Self.maxDomainOctets) octets.", field)
        }
        let address = localPart + "@" + domain
        guard address.utf8.count <= Self.maxAddressOctets else {
            throw Self.invalid("The email address is longer than \(Self.maxAddressOctets) octets.", field)
        }
        value = address
    }

    /// Trimmed, lowercased, in Unicode normal form C. Plain ASCII — nearly every address —
    /// takes a fast path that gives the same result without Foundation's Unicode tables.
    static func normalised(_ raw: String) -> String {
        let bytes = raw.utf8
        if bytes.allSatisfy({ $0 < 0x80 }) {
            let isSpace: (UInt8) -> Bool = { $0 == 0x20 || (0x09...0x0D).contains($0) }
            guard let first = bytes.firstIndex(where: { !isSpace($0) }),
                  let last = bytes.lastIndex(where: { !isSpace($0) }) else { return "" }
            return String(decoding: bytes[first...last].map { (0x41...0x5A).contains($0) ? $0 + 0x20 : $0 }, as: UTF8.self)
        }
        return raw.trimmingCharacters(in: .whitespacesAndNewlines).lowercased().precomposedStringWithCanonicalMapping
    }

    /// The part before the last `@`, with its quotes if it needs them.
    public var localPart: String {
        String(value.unicodeScalars[..<atIndex])
    }

    /// The part after the last `@`, e.g. `example.com`.
    public var domain: String {
        String(value.unicodeScalars[value.unicodeScalars.index(after: atIndex)...])
    }

    public var description: String { value }

    // A quoted local part may contain `@`, the domain never does, so the last one separates them.
    // Searched among scalars, not Characters: a non-ASCII letter before the `@` can form one
    // grapheme cluster with it (e.g. U+0D4E, a "prepend" character).
    private var atIndex: String.Index {
        value.unicodeScalars.lastIndex(of: "@")!
    }

    // MARK: Codable

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let raw = try container.decode(String.self)
        do {
            try self.init(raw)
        } catch {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: error.message)
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(value)
    }
}

// MARK: - Validation

extension EmailAddress {
    private static func invalid(_ message: String, _ field: String) -> DomainError {
        .invalid("invalid_email", message, field: field)
    }

    private static func checkedDotAtomLocalPart(
        _ scalars: ArraySlice<Unicode.Scalar>, _ field: String
    ) throws(DomainError) -> String {
        guard !scalars.isEmpty else {
            throw invalid("The part before the @ is empty.", field)
        }
        if let problem = dotAtomProblem(scalars) {
            throw invalid("The part before the @ \(problem).", field)
        }
        return string(scalars)
    }

    /// Why `scalars` is not a dot-atom, or nil when it is one.
    private static func dotAtomProblem(_ scalars: ArraySlice<Unicode.Scalar>) -> String? {
        if scalars.first == "." { return "must not start with a dot" }
        if scalars.last == "." { return "must not end with a dot" }
        var previous: Unicode.Scalar?
        for scalar in scalars {
            if scalar == "." {
                if previous == "." { return "must not contain two dots in a row" }
            } else if !isAtext(scalar) {
                return "contains a character that is not allowed; without quotes only letters, digits, dots and "
                    + allowedLocalPartSymbols + " are allowed"
            }
            previous = scalar
        }
        return nil
    }

    /// Reads `"…"@` at the start of `scalars` and returns the canonical local part and
    /// the position of the `@` after the closing quote.
    private static func parseQuotedLocalPart(
        _ scalars: [Unicode.Scalar], _ field: String
    ) throws(DomainError) -> (localPart: String, atIndex: Int) {
        var content: [Unicode.Scalar] = []
        var index = 1
        var closed = false
        while index < scalars.count {
            let scalar = scalars[index]
            index += 1
            if scalar == "\"" {
                closed = true
                break
            }
            if scalar == "\\" {
                // RFC 5321 quoted-pairSMTP: a backslash escapes one printable ASCII character.
                guard index < scalars.count, (32...126).contains(scalars[index].value) else {
                    throw invalid("A backslash in the quoted local part must be followed by a printable ASCII character.", field)
                }
                content.append(scalars[index])
                index += 1
            } else if (32...126).contains(scalar.value) || isAllowedNonASCII(scalar) {
                content.append(scalar)
            } else {
                throw invalid("The quoted local part contains a control or invisible character.", field)
            }
        }
        guard closed else {
            throw invalid("The quoted local part has no closing quote.", field)
        }
        guard index < scalars.count, scalars[index] == "@" else {
            throw invalid("The quoted local part must be followed directly by an @ and the domain.", field)
        }
        guard !content.isEmpty else {
            // `""@example.com` is grammatical but no mailbox provider hands out such an address.
            throw invalid("The part before the @ is empty.", field)
        }
        if dotAtomProblem(content[...]) == nil {
            return (string(content[...]), index)
        }
        var quoted = "\""
        for scalar in content {
            if scalar == "\"" || scalar == "\\" { quoted.unicodeScalars.append("\\") }
            quoted.unicodeScalars.append(scalar)
        }
        quoted += "\""
        return (quoted, index)
    }

    private static func checkedDomain(
        _ scalars: ArraySlice<Unicode.Scalar>, _ field: String
    ) throws(DomainError) -> String {
        guard !scalars.isEmpty else {
            throw invalid("The domain after the @ is empty.", field)
        }
        if scalars.first == "[" {
            throw invalid("Domain literals such as [192.0.2.1] are not accepted; use a domain name after the @.", field)
        }
        if scalars.contains("@") {
            throw invalid("The email address contains more than one @; put the local part in quotes if it really contains one.", field)
        }
        let labels = scalars.split(separator: ".", omittingEmptySubsequences: false)
        if labels.first!.isEmpty { throw invalid("The domain must not start with a dot.", field) }
        if labels.last!.isEmpty { throw invalid("The domain must not end with a dot.", field) }
        if labels.contains(where: \.isEmpty) {
            throw invalid("The domain must not contain two dots in a row.", field)
        }
        guard labels.count >= 2 else {
            throw invalid("The domain must have at least two parts separated by a dot, such as example.com.", field)
        }
        for label in labels {
            guard label.allSatisfy(isDomainLabelCharacter) else {
                throw invalid("The domain may contain only letters, digits, hyphens and dots.", field)
            }
            guard label.first != "-", label.last != "-" else {
                throw invalid("A part of the domain must not start or end with a hyphen.", field)
            }
            // IDNA2008 (RFC 5891 §4.2.3.2): a combining mark has no base to attach to here.
            guard !isCombiningMark(label.first!) else {
                throw invalid("A part of the domain must not start with a combining mark.", field)
            }
            guard string(label).utf8.count <= maxLabelOctets else {
                throw invalid("Each part of the domain between dots must be at most \(maxLabelOctets) octets long.", field)
            }
        }
        // An all-digit top-level label would make `1.2.3.4` pass as a domain.
        guard !labels.last!.allSatisfy(isASCIIDigit) else {
            throw invalid("The last part of the domain must not be all digits; IP addresses are not accepted.", field)
        }
        return string(scalars)
    }

    // MARK: Character classes

    private static func isAtext(_ scalar: Unicode.Scalar) -> Bool {
        isASCIILetter(scalar) || isASCIIDigit(scalar)
            || allowedLocalPartSymbols.unicodeScalars.contains(scalar)
            || isAllowedNonASCII(scalar)
    }

    /// RFC 6531 admits any non-ASCII UTF-8 character; we keep out the ones that cannot
    /// be seen or are not characters, since they let two addresses look identical.
    private static func isAllowedNonASCII(_ scalar: Unicode.Scalar) -> Bool {
        guard !scalar.isASCII, !scalar.properties.isWhitespace else { return false }
        switch scalar.properties.generalCategory {
        case .control, .format, .lineSeparator, .paragraphSeparator, .privateUse, .surrogate, .unassigned:
            return false
        default:
            return true
        }
    }

    /// Internationalised labels hold letters, combining marks and digits (IDNA2008);
    /// symbols and punctuation are not valid in domain names.
    private static func isDomainLabelCharacter(_ scalar: Unicode.Scalar) -> Bool {
        if scalar.isASCII {
            return isASCIILetter(scalar) || isASCIIDigit(scalar) || scalar == "-"
        }
        switch scalar.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter,
             .nonspacingMark, .spacingMark, .enclosingMark, .decimalNumber:
            return true
        default:
            return false
        }
    }

    private static func isCombiningMark(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.properties.generalCategory {
        case .nonspacingMark, .spacingMark, .enclosingMark: true
        default: false
        }
    }

    private static func isASCIILetter(_ scalar: Unicode.Scalar) -> Bool {
        ("a"..."z").contains(scalar) || ("A"..."Z").contains(scalar)
    }

    private static func isASCIIDigit(_ scalar: Unicode.Scalar) -> Bool {
        ("0"..."9").contains(scalar)
    }

    private static func string(_ scalars: ArraySlice<Unicode.Scalar>) -> String {
        var result = ""
        result.unicodeScalars.append(contentsOf: scalars)
        return result
    }
}
