import Foundation

/// The canonical spelling of contact attribute and event property names.
///
/// Client libraries send `firstName`, CSV headers say `First Name`, and templates
/// use `{{ first_name }}`; all of them must reach the same attribute. Every name is
/// therefore turned into a snake_case slug:
///
/// 1. Surrounding whitespace is trimmed.
/// 2. Only ASCII letters, ASCII digits and the separators space, `-`, `.`, `/` and `_`
///    are allowed. Any other character, including accented letters, is rejected rather
///    than transliterated, so that no two names silently become one.
/// 3. An `_` is inserted wherever a lowercase letter or a digit is followed by an
///    uppercase letter: `firstName` → `first_name`, `address2City` → `address2_city`.
///    A run of capitals stays together: `userID` → `user_id`, `HTMLBody` → `htmlbody`.
/// 4. Letters are lowercased.
/// 5. Each run of separators becomes a single `_`, and separators at the start or the
///    end are dropped: `First Name` → `first_name`, `plan-tier` → `plan_tier`,
///    `utm.source` → `utm_source`, `__a--b__` → `a_b`.
/// 6. The result must match `^[a-z][a-z0-9_]{0,63}$`: it starts with a letter and is
///    at most 64 characters long.
///
/// A name that breaks a rule fails with `invalid_attribute_name`.
public enum AttributeName {
    /// The longest normalised name, in characters (all ASCII, so also in bytes).
    public static let maxLength = 64

    /// Returns the snake_case form of `raw`, following the rules above.
    ///
    /// - Parameter field: the input field named in the error, usually the original key.
    public static func normalise(_ raw: String, field: String) throws(DomainError) -> String {
        var result: [UInt8] = []
        var previous: UInt8?
        var separatorPending = false
        for scalar in raw.trimmingCharacters(in: .whitespacesAndNewlines).unicodeScalars {
            guard scalar.isASCII else {
                throw invalid(
                    "Attribute names may contain only ASCII letters, digits, spaces and the separators - . / _; "
                        + "other characters, including accented letters, are not transliterated.",
                    field
                )
            }
            let byte = UInt8(scalar.value)
            defer { previous = byte }
            if isSeparator(byte) {
                separatorPending = true
                continue
            }
            guard isLetter(byte) || isDigit(byte) else {
                throw invalid(
                    "Attribute names may contain only ASCII letters, digits, spaces and the separators - . / _.",
                    field
                )
            }
            if isUppercase(byte), let previous, isLowercase(previous) || isDigit(previous) {
                separatorPending = true
            }
            // A pending separator before the first character is a leading one, which is dropped;
            // one after the last character is never written.
            if separatorPending, !result.isEmpty {
                result.append(UInt8(ascii: "_"))
            }
            separatorPending = false
            result.append(isUppercase(byte) ? byte + 32 : byte)
        }

        guard let first = result.first else {
            throw invalid("Attribute name is empty; it needs at least one letter.", field)
        }
        guard isLowercase(first) else {
            throw invalid("Attribute name must start with a letter; the normalised name must match ^[a-z][a-z0-9_]{0,63}$.", field)
        }
        guard result.count <= maxLength else {
            throw invalid("Attribute name is longer than \(maxLength) characters after normalisation to snake_case.", field)
        }
        return String(decoding: result, as: UTF8.self)
    }

    private static func invalid(_ message: String, _ field: String) -> DomainError {
        .invalid("invalid_attribute_name", message, field: field)
    }

    private static func isSeparator(_ byte: UInt8) -> Bool {
        byte == UInt8(ascii: " ") || byte == UInt8(ascii: "-") || byte == UInt8(ascii: ".")
            || byte == UInt8(ascii: "/") || byte == UInt8(ascii: "_")
    }

    private static func isLowercase(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte)
    }

    private static func isUppercase(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
    }

    private static func isLetter(_ byte: UInt8) -> Bool {
        isLowercase(byte) || isUppercase(byte)
    }

    private static func isDigit(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
    }
}
