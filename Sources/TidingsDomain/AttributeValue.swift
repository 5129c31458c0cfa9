import Foundation

/// The typed value of a contact attribute or an event property.
///
/// JSON has no date type, so a string that is a valid RFC 3339 date or date-time is
/// stored as ``date(_:)``; every other string stays a ``string(_:)``. Dates are kept in
/// one canonical text form, so that equal instants compare equal and sort correctly
/// as text:
///
/// - a date alone: `YYYY-MM-DD`, e.g. `2024-02-29`;
/// - a date-time, converted to UTC: `YYYY-MM-DDTHH:MM:SSZ`, or `YYYY-MM-DDTHH:MM:SS.sssZ`
///   with exactly three fractional digits when the input had a fraction.
///
/// See ``recogniseDate(_:)`` for exactly what counts as a date.
public enum AttributeValue: Hashable, Sendable {
    case string(String)
    case number(Double)
    case boolean(Bool)
    /// A date in canonical form (see the type's documentation).
    case date(String)

    /// The type of a value, as stored next to it and as declared for CSV columns.
    public enum Kind: String, Sendable, CaseIterable {
        case string, number, boolean, date
    }

    /// The longest string value, in UTF-8 bytes. Longer text belongs in a template, not on a contact.
    public static let maxStringBytes = 2048

    public var kind: Kind {
        switch self {
        case .string: .string
        case .number: .number
        case .boolean: .boolean
        case .date: .date
        }
    }

    // MARK: From requests

    /// Converts a JSON value from a request; returns nil for `null`, which means
    /// "remove this attribute".
    ///
    /// - Parameter field: the input field named in errors, e.g. `plan` or `properties.plan`.
    /// - Throws: `unsupported_attribute_type` for arrays and objects,
    ///   `attribute_value_too_long` for strings over ``maxStringBytes``,
    ///   `invalid_attribute_value` for infinite or NaN numbers.
    public init?(json: JSONValue, field: String) throws(DomainError) {
        switch json {
        case .null:
            return nil
        case .bool(let value):
            self = .boolean(value)
        case .number(let value):
            guard value.isFinite else {
                throw .invalid("invalid_attribute_value", "Attribute value must be a finite number.", field: field)
            }
            self = .number(value)
        case .string(let text):
            self = try Self.fromString(text, field: field)
        case .array, .object:
            throw .invalid(
                "unsupported_attribute_type",
                "Attribute value must be a string, number, boolean, date or null; got \(json.typeName).",
                field: field
            )
        }
    }

    /// Converts the text of a CSV cell whose column was declared as `kind`.
    ///
    /// - `string`: kept as text, except that an RFC 3339 date becomes a date, exactly as
    ///   for JSON strings, so an import and an API call store the same value.
    /// - `number`: a decimal such as `42`, `-3.5`, `.5` or `1e3` (surrounding whitespace
    ///   ignored); no thousands separators, no `inf`/`nan`, no hexadecimal.
    /// - `boolean`: `true`/`false`, `yes`/`no`, `1`/`0`, in any case.
    /// - `date`: must be a date per ``recogniseDate(_:)``.
    ///
    /// An empty cell is not a value of any kind but `string`: callers decide whether it
    /// means "skip" or "remove" before calling this.
    ///
    /// - Throws: `invalid_attribute_value` when the text is not of the declared kind,
    ///   `attribute_value_too_long` for strings over ``maxStringBytes``.
    public init(text: String, as kind: Kind, field: String) throws(DomainError) {
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        switch kind {
        case .string:
            self = try Self.fromString(text, field: field)
        case .number:
            guard let value = Self.parseDecimal(trimmed) else {
                throw .invalid(
                    "invalid_attribute_value",
                    "Attribute value must be a decimal number such as 42, -3.5 or 1e3.",
                    field: field
                )
            }
            self = .number(value)
        case .boolean:
            switch trimmed.lowercased() {
            case "true", "yes", "1": self = .boolean(true)
            case "false", "no", "0": self = .boolean(false)
            default:
                throw .invalid(
                    "invalid_attribute_value",
                    "Attribute value must be a boolean: true, false, yes, no, 1 or 0.",
                    field: field
                )
            }
        case .date:
            guard let date = Self.recogniseDate(trimmed) else {
                throw .invalid(
                    "invalid_attribute_value",
                    "Attribute value must be a date (YYYY-MM-DD) or a date-time with an offset (YYYY-MM-DDTHH:MM:SSZ).",
                    field: field
                )
            }
            self = .date(date)
        }
    }

    private static func fromString(_ text: String, field: String) throws(DomainError) -> AttributeValue {
        if let date = recogniseDate(text) {
            return .date(date)
        }
        guard text.utf8.count <= maxStringBytes else {
            throw DomainError(
                .invalid,
                code: "attribute_value_too_long",
                message: "Attribute value is longer than \(maxStringBytes) bytes (UTF-8).",
                field: field
            )
        }
        return .string(text)
    }

    // MARK: Out to responses and storage

    /// The value as it appears in API responses; dates are their canonical string.
    public var json: JSONValue {
        switch self {
        case .string(let text): .string(text)
        case .number(let value): .number(value)
        case .boolean(let value): .bool(value)
        case .date(let text): .string(text)
        }
    }

    /// The canonical text stored in the database and compared by equality filters.
    ///
    /// Numbers print without a fraction when they are integral and their magnitude is
    /// below 2^53 (so `3.0` is `3`, the way clients wrote it), and otherwise as Swift's
    /// shortest round-tripping form (`0.1`, `1e+20`). Booleans are `true`/`false`.
    public var storageText: String {
        switch self {
        case .string(let text): text
        case .number(let value): Self.canonicalNumberText(value)
        case .boolean(let value): value ? "true" : "false"
        case .date(let text): text
        }
    }

    /// Rebuilds a value from ``kind`` and ``storageText``.
    ///
    /// Stored data was validated on the way in, so this does not throw; text that no
    /// longer parses as its kind comes back as a string rather than being lost.
    public init(kind: Kind, storageText: String) {
        switch kind {
        case .string:
            self = .string(storageText)
        case .number:
            if let value = Double(storageText), value.isFinite {
                self = .number(value)
            } else {
                self = .string(storageText)
            }
        case .boolean:
            switch storageText {
            case "true": self = .boolean(true)
            case "false": self = .boolean(false)
            default: self = .string(storageText)
            }
        case .date:
            self = Self.recogniseDate(storageText).map(AttributeValue.date) ?? .string(storageText)
        }
    }

    private static func canonicalNumberText(_ value: Double) -> String {
        if value.rounded() == value, abs(value) < 9_007_199_254_740_992 {
            return String(Int64(value))
        }
        return value.description
    }

    /// Parses `[+-]digits[.digits][e[+-]digits]` (at least one mantissa digit), which is
    /// stricter than `Double(_:)`: that also accepts `inf`, `nan` and hexadecimal.
    private static func parseDecimal(_ text: String) -> Double? {
        let bytes = Array(text.utf8)
        var index = 0
        func skipDigits() -> Int {
            let start = index
            while index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) {
                index += 1
            }
            return index - start
        }
        if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") {
            index += 1
        }
        var mantissaDigits = skipDigits()
        if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
            index += 1
            mantissaDigits += skipDigits()
        }
        guard mantissaDigits > 0 else { return nil }
        if index < bytes.count, bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E") {
            index += 1
            if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") {
                index += 1
            }
            guard skipDigits() > 0 else { return nil }
        }
        guard index == bytes.count, let value = Double(text), value.isFinite else { return nil }
        return value
    }
}

// MARK: - Dates

extension AttributeValue {
    /// Returns the canonical form of `text` if it is a date, or nil.
    ///
    /// Accepted is the RFC 3339 profile of ISO 8601, exactly:
    ///
    /// - `YYYY-MM-DD`: a calendar date that exists (leap years per the Gregorian rules,
    ///   so `2024-02-29` is a date and `2023-02-29` is not); years 0000–9999.
    /// - `YYYY-MM-DDTHH:MM:SS[.fraction]offset`, where `T` may be `t`, the fraction has
    ///   one or more digits, and the offset is `Z`, `z`, `+hh:mm` or `-hh:mm`. Hours are
    ///   00–23, minutes and seconds 00–59 (leap seconds are not accepted).
    ///
    /// Not dates, and therefore plain strings: a space instead of `T`, a time without
    /// seconds or without an offset (a local time names no single instant), offsets
    /// without a colon, week or ordinal dates, and anything with surrounding whitespace.
    ///
    /// Date-times are converted to UTC. A fraction is cut (not rounded) to exactly three
    /// digits, so the canonical instant never moves into the next second or day.
    public static func recogniseDate(_ text: String) -> String? {
        // Every string attribute passes through here and most are not dates: decide that
        // before copying anything.
        guard text.utf8.count >= 10, let first = text.utf8.first,
              (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(first)
        else { return nil }
        let bytes = Array(text.utf8)
        func number(at start: Int, digits: Int) -> Int? {
            guard start + digits <= bytes.count else { return nil }
            var value = 0
            for byte in bytes[start..<(start + digits)] {
                guard (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) else { return nil }
                value = value * 10 + Int(byte - UInt8(ascii: "0"))
            }
            return value
        }
        func byte(at index: Int, is characters: Character...) -> Bool {
            index < bytes.count && characters.contains { $0.asciiValue == bytes[index] }
        }

        guard let year = number(at: 0, digits: 4), byte(at: 4, is: "-"),
              let month = number(at: 5, digits: 2), byte(at: 7, is: "-"),
              let day = number(at: 8, digits: 2),
              (1...12).contains(month), (1...daysIn(month: month, year: year)).contains(day)
        else { return nil }
        if bytes.count == 10 {
            return text
        }

        guard byte(at: 10, is: "T", "t"),
              let hour = number(at: 11, digits: 2), byte(at: 13, is: ":"),
              let minute = number(at: 14, digits: 2), byte(at: 16, is: ":"),
              let second = number(at: 17, digits: 2),
              hour < 24, minute < 60, second < 60
        else { return nil }

        var index = 19
        var milliseconds: Int?
        if byte(at: index, is: ".") {
            index += 1
            var digits: [Int] = []
            while let digit = number(at: index, digits: 1) {
                digits.append(digit)
                index += 1
            }
            guard !digits.isEmpty else { return nil }
            milliseconds = (digits + [0, 0, 0]).prefix(3).reduce(0) { $0 * 10 + $1 }
        }

        let offsetSeconds: Int
        if byte(at: index, is: "Z", "z") {
            offsetSeconds = 0
            index += 1
        } else if byte(at: index, is: "+", "-"),
                  let offsetHour = number(at: index + 1, digits: 2), byte(at: index + 3, is: ":"),
                  let offsetMinute = number(at: index + 4, digits: 2),
                  offsetHour < 24, offsetMinute < 60 {
            let magnitude = offsetHour * 3600 + offsetMinute * 60
            offsetSeconds = bytes[index] == UInt8(ascii: "-") ? -magnitude : magnitude
            index += 6
        } else {
            return nil
        }
        guard index == bytes.count else { return nil }

        // The local time is UTC plus the offset, so UTC is the local time minus it.
        // Offsets are under a day, so the date moves by at most one day either way.
        var date = (year: year, month: month, day: day)
        var secondOfDay = hour * 3600 + minute * 60 + second - offsetSeconds
        if secondOfDay < 0 {
            secondOfDay += 86_400
            date = previousDay(date)
        } else if secondOfDay >= 86_400 {
            secondOfDay -= 86_400
            date = nextDay(date)
        }
        guard (0...9999).contains(date.year) else { return nil }

        var result = "\(pad(date.year, 4))-\(pad(date.month, 2))-\(pad(date.day, 2))"
        result += "T\(pad(secondOfDay / 3600, 2)):\(pad(secondOfDay / 60 % 60, 2)):\(pad(secondOfDay % 60, 2))"
        if let milliseconds {
            result += ".\(pad(milliseconds, 3))"
        }
        return result + "Z"
    }

    private static func isLeapYear(_ year: Int) -> Bool {
        (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
    }

    private static func daysIn(month: Int, year: Int) -> Int {
        switch month {
        case 2: isLeapYear(year) ? 29 : 28
        case 4, 6, 9, 11: 30
        default: 31
        }
    }

    private static func previousDay(_ date: (year: Int, month: Int, day: Int)) -> (year: Int, month: Int, day: Int) {
        if date.day > 1 { return (date.year, date.month, date.day - 1) }
        if date.month > 1 { return (date.year, date.month - 1, daysIn(month: date.month - 1, year: date.year)) }
        return (date.year - 1, 12, 31)
    }

    private static func nextDay(_ date: (year: Int, month: Int, day: Int)) -> (year: Int, month: Int, day: Int) {
        if date.day < daysIn(month: date.month, year: date.year) { return (date.year, date.month, date.day + 1) }
        if date.month < 12 { return (date.year, date.month + 1, 1) }
        return (date.year + 1, 1, 1)
    }

    private static func pad(_ value: Int, _ width: Int) -> String {
        let digits = String(value)
        return String(repeating: "0", count: max(0, width - digits.count)) + digits
    }
}
