import Foundation

/// The identifier of an event type, such as `signed-up` or `order.completed`.
///
/// Automations are triggered by slug, so `Signed-Up` sent by one client and
/// `signed-up` sent by another must be the same event. A slug is trimmed, its ASCII
/// letters are lowercased, and the result must match
///
///     ^[a-z0-9][a-z0-9._-]{0,63}$
///
/// that is, 1 to 64 characters of lowercase letters, digits, `.`, `_` and `-`,
/// starting with a letter or a digit. Unlike attribute names, slugs are not rewritten
/// to snake_case: they are identifiers the client chose and shows in its own code.
public enum EventSlug {
    /// The longest slug, in characters.
    public static let maxLength = 64

    /// Returns the canonical form of `raw`.
    ///
    /// - Throws: `invalid_slug` on the field `slug` when it does not match the pattern.
    public static func normalise(_ raw: String) throws(DomainError) -> String {
        let trimmed = raw.trimmingCharacters(in: .whitespacesAndNewlines)
        var result: [UInt8] = []
        // Only ASCII is lowercased, so a non-ASCII character never turns into an allowed
        // one (the Kelvin sign, U+212A, lowercases to `k` under Unicode rules).
        for scalar in trimmed.unicodeScalars {
            guard scalar.isASCII else { throw invalid() }
            let byte = UInt8(scalar.value)
            let lowered = (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte) ? byte + 32 : byte
            let isAlphanumeric = (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(lowered)
                || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(lowered)
            let isPunctuation = lowered == UInt8(ascii: ".") || lowered == UInt8(ascii: "_") || lowered == UInt8(ascii: "-")
            guard isAlphanumeric || (isPunctuation && !result.isEmpty) else { throw invalid() }
            result.append(lowered)
        }
        guard !result.isEmpty, result.count <= maxLength else { throw invalid() }
        return String(decoding: result, as: UTF8.self)
    }

    private static func invalid() -> DomainError {
        .invalid(
            "invalid_slug",
            "Event slug must match ^[a-z0-9][a-z0-9._-]{0,63}$ after trimming and lowercasing: "
                + "1 to 64 letters, digits, '.', '_' or '-', starting with a letter or a digit.",
            field: "slug"
        )
    }
}
