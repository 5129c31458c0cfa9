import Foundation

/// Rules a new password must meet, following NIST SP 800-63B (§5.1.1.2).
///
/// What it checks, and why only that:
/// - **Length** between ``minimumLength`` (12) and ``maximumLength`` (256). Length is what
///   makes a password hard to guess; the generous maximum lets people use passphrases
///   and password managers, while still bounding the work one login attempt can cause.
/// - **Not a common password**, compared without regard to letter case, against a
///   ``CommonPasswordList``. Attackers try these first.
/// - **Not containing the account's e-mail address or its local part**, also without
///   regard to case: it is the first thing a targeted guess would try.
///
/// Deliberately *not* checked: composition rules ("a digit and a symbol"), which NIST
/// says verifiers SHALL NOT impose because they push people to predictable patterns
/// like `Password1!` without adding real strength.
///
/// **How length is counted.** The password is first put in Unicode NFC (see
/// `PasswordNormalization`), the same form in which it is hashed, and then its Unicode
/// scalars (code points) are counted, as SP 800-63B asks ("each Unicode code point
/// SHALL be counted as a single character"). NFC makes "é" count once whether it was
/// typed as one code point or as "e" plus a combining accent. Grapheme clusters
/// (Swift `Character`s) are not used: one emoji family or a Hangul syllable block is a
/// single `Character` but several code points of real input, and their grouping
/// changes with Unicode versions, so counts would drift between Swift releases.
public struct PasswordPolicy: Sendable {
    public static let defaultMinimumLength = 12
    public static let defaultMaximumLength = 256
    /// Local parts shorter than this are not looked for: "jo" inside a passphrase is
    /// coincidence, not a guessable pattern.
    public static let minimumIdentifierLength = 3

    /// Why a password was refused. The descriptions are written for the person choosing
    /// the password and never contain it, so they are safe to show and to log.
    public enum Violation: Error, Sendable, Hashable, CustomStringConvertible {
        /// Fewer than `minimum` characters.
        case tooShort(minimum: Int)
        /// More than `maximum` characters.
        case tooLong(maximum: Int)
        /// On the list of commonly used passwords.
        case commonPassword
        /// Contains the account's whole e-mail address.
        case containsEmailAddress
        /// Contains the part of the account's e-mail address before the `@`.
        case containsEmailLocalPart

        public var description: String {
            switch self {
            case .tooShort(let minimum):
                "Use at least \(minimum) characters. A short phrase of several words is easy to remember and hard to guess."
            case .tooLong(let maximum):
                "Use at most \(maximum) characters."
            case .commonPassword:
                "This password is too common: it is among the first that attackers try. Choose another one."
            case .containsEmailAddress:
                "The password must not contain your e-mail address."
            case .containsEmailLocalPart:
                "The password must not contain your user name (the part of your e-mail address before the @)."
            }
        }
    }

    public let minimumLength: Int
    public let maximumLength: Int
    public let commonPasswords: CommonPasswordList

    /// - Parameters:
    ///   - commonPasswords: Passwords to refuse, typically loaded once at start-up with
    ///     ``CommonPasswordList/init(contentsOfFile:)``.
    ///   - minimumLength: At least 8, the floor NIST sets for any memorised secret.
    ///   - maximumLength: At least 64, the least NIST allows verifiers to cap at.
    public init(
        commonPasswords: CommonPasswordList = .empty,
        minimumLength: Int = PasswordPolicy.defaultMinimumLength,
        maximumLength: Int = PasswordPolicy.defaultMaximumLength
    ) {
        precondition(minimumLength >= 8, "NIST SP 800-63B requires at least 8 characters")
        precondition(maximumLength >= 64 && maximumLength >= minimumLength, "NIST SP 800-63B requires allowing at least 64 characters")
        self.commonPasswords = commonPasswords
        self.minimumLength = minimumLength
        self.maximumLength = maximumLength
    }

    /// The length the policy measures: Unicode scalars of the NFC form.
    public static func length(of password: String) -> Int {
        PasswordNormalization.normalize(password).unicodeScalars.count
    }

    /// Throws the first rule `password` breaks, in the order of ``violations(of:email:)``.
    ///
    /// - Parameter email: The account's e-mail address, when known.
    public func validate(_ password: String, email: String?) throws(Violation) {
        if let first = violations(of: password, email: email).first {
            throw first
        }
    }

    /// Every rule `password` breaks: length first, then the common-password list, then
    /// the e-mail address. An empty array means the password is acceptable.
    ///
    /// Only the more specific of the two e-mail findings is reported, since a password
    /// containing the whole address also contains its local part.
    public func violations(of password: String, email: String?) -> [Violation] {
        // Cheap bound before normalising, so a megabyte-long "password" costs nothing.
        // NFC at most merges 4 code points into 1 and a code point is at most 4 UTF-8
        // bytes, so anything over 16 bytes per allowed character is certainly too long.
        if password.utf8.count > maximumLength * 16 {
            return [.tooLong(maximum: maximumLength)]
        }

        let normalized = PasswordNormalization.normalize(password)
        let length = normalized.unicodeScalars.count
        var found: [Violation] = []
        if length < minimumLength {
            found.append(.tooShort(minimum: minimumLength))
        }
        if length > maximumLength {
            found.append(.tooLong(maximum: maximumLength))
        }
        if commonPasswords.contains(normalized) || Self.isDecoratedCommon(normalized, in: commonPasswords) {
            found.append(.commonPassword)
        }
        if let email, let emailViolation = Self.emailViolation(password: normalized, email: email) {
            found.append(emailViolation)
        }
        return found
    }

    /// A common password with the usual decoration is still common: digits or symbols
    /// around it (`password1234`, `!!dragon2024`) or the word repeated (`monkeymonkey`).
    /// Common lists hold few long entries, so at 12 characters most guesses look like this.
    static func isDecoratedCommon(_ password: String, in list: CommonPasswordList) -> Bool {
        let scalars = Array(password.lowercased().unicodeScalars)
        let isLetter: (Unicode.Scalar) -> Bool = { CharacterSet.letters.contains($0) }
        guard let first = scalars.firstIndex(where: isLetter), let last = scalars.lastIndex(where: isLetter) else {
            return false
        }
        let core = String(String.UnicodeScalarView(scalars[first...last]))
        if core.unicodeScalars.count >= 3, list.contains(core) { return true }
        // The whole word repeated two or more times.
        let coreScalars = Array(core.unicodeScalars)
        for length in stride(from: 3, through: coreScalars.count / 2, by: 1) where coreScalars.count % length == 0 {
            let unit = Array(coreScalars[0..<length])
            let repeated = (0..<(coreScalars.count / length)).allSatisfy { Array(coreScalars[($0 * length)..<(($0 + 1) * length)]) == unit }
            if repeated, list.contains(String(String.UnicodeScalarView(unit))) { return true }
        }
        return false
    }

    /// Looks for the address, its local part and, for a sub-address like
    /// `alice+news@example.com`, the base local part `alice`, all case-insensitively on
    /// lowercased NFC code points (so a decomposed accent cannot hide a match).
    private static func emailViolation(password: String, email: String) -> Violation? {
        let haystack = lowercasedScalars(password)
        let address = lowercasedScalars(email.trimmingCharacters(in: .whitespacesAndNewlines))
        guard !address.isEmpty else { return nil }

        if address.count >= minimumIdentifierLength, contains(haystack, address) {
            return .containsEmailAddress
        }
        guard let at = address.lastIndex(of: "@") else { return nil }
        let localPart = Array(address[..<at])
        var candidates = [localPart]
        if let plus = localPart.firstIndex(of: "+") {
            candidates.append(Array(localPart[..<plus]))
        }
        for candidate in candidates where candidate.count >= minimumIdentifierLength {
            if contains(haystack, candidate) {
                return .containsEmailLocalPart
            }
        }
        return nil
    }

    private static func lowercasedScalars(_ text: String) -> [Unicode.Scalar] {
        Array(PasswordNormalization.normalize(text.lowercased()).unicodeScalars)
    }

    /// Plain substring search; both sides are at most a few hundred code points.
    private static func contains(_ haystack: [Unicode.Scalar], _ needle: [Unicode.Scalar]) -> Bool {
        guard !needle.isEmpty, needle.count <= haystack.count else { return false }
        for start in 0...(haystack.count - needle.count)
        where haystack[start..<(start + needle.count)].elementsEqual(needle) {
            return true
        }
        return false
    }
}
