/// A domain name as the labels it is made of (RFC 1035 §3.1). Names compare without regard
/// to ASCII case (RFC 4343); the labels keep the case they were given.
public struct DNSName: Sendable, Hashable, CustomStringConvertible {
    /// The labels, most specific first; empty for the root.
    public let labels: [[UInt8]]

    /// RFC 1035 §2.3.4.
    public static let maxLabelLength = 63
    public static let maxWireLength = 255

    public static let root = DNSName(uncheckedLabels: [])

    init(uncheckedLabels labels: [[UInt8]]) {
        self.labels = labels
    }

    /// A name written with dots, such as `acme.test` or `acme.test.`; `.` alone is the root.
    /// Every label is 1 to 63 bytes and the whole name fits in 255 bytes on the wire.
    public init(_ text: String) throws(DNSNameError) {
        var trimmed = Substring(text)
        if trimmed.hasSuffix(".") { trimmed = trimmed.dropLast() }
        if trimmed.isEmpty {
            guard !text.isEmpty else { throw .empty }
            self = .root
            return
        }
        try self.init(labels: trimmed.split(separator: ".", omittingEmptySubsequences: false).map { Array($0.utf8) })
    }

    public init(labels: [[UInt8]]) throws(DNSNameError) {
        for label in labels {
            guard !label.isEmpty else { throw .emptyLabel }
            guard label.count <= Self.maxLabelLength else { throw .labelTooLong(label.count) }
        }
        let name = DNSName(uncheckedLabels: labels)
        guard name.wireLength <= Self.maxWireLength else { throw .tooLong(name.wireLength) }
        self = name
    }

    /// Bytes on the wire without compression: a length byte per label, then the root's zero.
    public var wireLength: Int {
        labels.reduce(1) { $0 + 1 + $1.count }
    }

    /// `child.name`.
    public func prepending(_ label: String) throws(DNSNameError) -> DNSName {
        try DNSName(labels: [Array(label.utf8)] + labels)
    }

    /// The name with its first `count` labels removed.
    public func dropping(_ count: Int) -> DNSName {
        DNSName(uncheckedLabels: Array(labels.dropFirst(count)))
    }

    /// Whether this name is `other` or lies below it.
    public func isWithin(_ other: DNSName) -> Bool {
        labels.count >= other.labels.count && DNSName(uncheckedLabels: Array(labels.suffix(other.labels.count))) == other
    }

    /// Dotted, without the final dot; bytes outside printable ASCII, dots and backslashes
    /// inside labels are escaped as in zone files (`\046`, `\\`).
    public var description: String {
        if labels.isEmpty { return "." }
        return labels.map(Self.escape).joined(separator: ".")
    }

    private static func escape(_ label: [UInt8]) -> String {
        var text = ""
        for byte in label {
            switch byte {
            case UInt8(ascii: "."), UInt8(ascii: "\\"):
                text += "\\" + String(UnicodeScalar(byte))
            case 0x21...0x7E:
                text.unicodeScalars.append(UnicodeScalar(byte))
            default:
                let digits = String(byte)
                text += "\\" + String(repeating: "0", count: 3 - digits.count) + digits
            }
        }
        return text
    }

    private static func lowercased(_ byte: UInt8) -> UInt8 {
        (0x41...0x5A).contains(byte) ? byte + 0x20 : byte
    }

    public static func == (lhs: DNSName, rhs: DNSName) -> Bool {
        lhs.labels.count == rhs.labels.count && zip(lhs.labels, rhs.labels).allSatisfy { left, right in
            left.count == right.count && zip(left, right).allSatisfy { lowercased($0) == lowercased($1) }
        }
    }

    public func hash(into hasher: inout Hasher) {
        for label in labels {
            hasher.combine(label.count)
            for byte in label { hasher.combine(Self.lowercased(byte)) }
        }
    }
}

/// Why text is not a domain name.
public enum DNSNameError: Error, Sendable, Equatable, CustomStringConvertible {
    case empty
    case emptyLabel
    case labelTooLong(Int)
    case tooLong(Int)

    public var description: String {
        switch self {
        case .empty: "the name is empty"
        case .emptyLabel: "the name has an empty label (two dots in a row, or a leading dot)"
        case .labelTooLong(let length): "a label is \(length) bytes long; the limit is 63"
        case .tooLong(let length): "the name is \(length) bytes long on the wire; the limit is 255"
        }
    }
}
