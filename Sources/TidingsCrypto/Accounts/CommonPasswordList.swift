import Foundation

/// A set of commonly used passwords that ``PasswordPolicy`` refuses, as NIST SP 800-63B
/// requires ("values known to be commonly-used, expected, or compromised").
///
/// Loaded once from a word list at start-up and then shared read-only: the type is an
/// immutable value holding a `Set`, so one instance can serve every request without locks.
/// Entries are kept lowercased and NFC-normalised so that a lookup is a single hash
/// probe and matches regardless of letter case.
public struct CommonPasswordList: Sendable {
    /// Prefix of the header lines in John the Ripper's `password.lst`.
    public static let commentPrefix = "#!comment:"

    /// The conventional location of the list shipped by Debian's `john-data` package.
    public static let johnTheRipperPath = "/usr/share/john/password.lst"

    /// A list that contains nothing, for deployments (and tests) without a word list.
    public static let empty = CommonPasswordList([String]())

    private let entries: Set<String>

    /// Builds a list from passwords already in memory.
    public init(_ passwords: some Sequence<String>) {
        var entries = Set<String>()
        for password in passwords where !password.isEmpty {
            entries.insert(Self.canonical(password))
        }
        self.entries = entries
    }

    /// Reads a word list with one password per line.
    ///
    /// Lines starting with `#!comment:` (John the Ripper's header) and empty lines are
    /// skipped; `\n` and `\r\n` line ends are both accepted. Bytes that are not valid UTF-8
    /// (some leaked-password lists are Latin-1) are replaced rather than failing the load,
    /// since a damaged entry only means that one password is not refused.
    ///
    /// - Parameter path: File system path of the list, e.g. ``johnTheRipperPath``.
    /// - Throws: The file system error when the file cannot be read.
    public init(contentsOfFile path: String) throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        let comment = Array(Self.commentPrefix.utf8)
        var entries = Set<String>()
        for rawLine in data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: true) {
            var line = rawLine[...]
            if line.last == UInt8(ascii: "\r") { line = line.dropLast() }
            guard !line.isEmpty, !line.starts(with: comment) else { continue }
            entries.insert(Self.canonical(String(decoding: line, as: UTF8.self)))
        }
        self.entries = entries
    }

    /// Number of distinct entries (after lowercasing).
    public var count: Int { entries.count }

    /// `true` when `password`, ignoring letter case, is on the list.
    public func contains(_ password: String) -> Bool {
        entries.contains(Self.canonical(password))
    }

    /// Lowercase NFC form used for both entries and lookups. Pure-ASCII text is already
    /// in NFC, which keeps loading a list of millions of entries fast.
    private static func canonical(_ password: String) -> String {
        let lowered = password.lowercased()
        if lowered.utf8.allSatisfy({ $0 < 0x80 }) { return lowered }
        return PasswordNormalization.normalize(lowered)
    }
}
