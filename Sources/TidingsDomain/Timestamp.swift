import Foundation

/// RFC 3339 timestamps in UTC with millisecond precision: `2026-11-30T10:11:38.123Z`.
///
/// The one format used in the API, in the database (as text, which sorts in
/// time order on every backend) and in logs. Written by hand because
/// `ISO8601DateFormatter` is slow on hot paths and accepts more than we want.
public enum Timestamp {
    public static func format(_ date: Date) -> String {
        // Clamped to the years 0000–9999, the range `parse` accepts, so formatting never traps.
        let totalMilliseconds = min(max(Int64((date.timeIntervalSince1970 * 1000).rounded(.down)), -62_167_219_200_000), 253_402_300_799_999)
        let days = totalMilliseconds >= 0 ? totalMilliseconds / 86_400_000 : (totalMilliseconds - 86_399_999) / 86_400_000
        let millisOfDay = totalMilliseconds - days * 86_400_000
        let (year, month, day) = civilFromDays(days)
        let hour = millisOfDay / 3_600_000
        let minute = (millisOfDay / 60_000) % 60
        let second = (millisOfDay / 1000) % 60
        let millis = millisOfDay % 1000
        var out = [UInt8]()
        out.reserveCapacity(24)
        func put(_ value: Int64, width: Int) {
            var digits = [UInt8](repeating: 48, count: width)
            var rest = value
            for index in stride(from: width - 1, through: 0, by: -1) {
                digits[index] = 48 + UInt8(rest % 10)
                rest /= 10
            }
            out.append(contentsOf: digits)
        }
        put(year, width: 4); out.append(45)
        put(month, width: 2); out.append(45)
        put(day, width: 2); out.append(84)
        put(hour, width: 2); out.append(58)
        put(minute, width: 2); out.append(58)
        put(second, width: 2); out.append(46)
        put(millis, width: 3); out.append(90)
        return String(decoding: out, as: UTF8.self)
    }

    /// Parses RFC 3339 date-times (`Z` or a numeric offset, optional fraction) whose UTC
    /// time lies in the years 0000–9999.
    ///
    /// One grammar for the whole product: `AttributeValue.recogniseDate` validates and
    /// normalises to UTC, and only its canonical form is read here.
    public static func parse(_ text: String) -> Date? {
        guard let canonical = AttributeValue.recogniseDate(text) else { return nil }
        let bytes = Array(canonical.utf8)
        // Date-only values are dates, not timestamps.
        guard bytes.count >= 20 else { return nil }
        func number(_ range: Range<Int>) -> Int64 {
            range.reduce(0) { $0 * 10 + Int64(bytes[$1] - 48) }
        }
        let days = daysFromCivil(year: number(0..<4), month: number(5..<7), day: number(8..<10))
        let seconds = days * 86_400 + number(11..<13) * 3600 + number(14..<16) * 60 + number(17..<19)
        let milliseconds = bytes[19] == 46 ? number(20..<23) : 0
        return Date(timeIntervalSince1970: Double(seconds) + Double(milliseconds) / 1000)
    }

    // Howard Hinnant's days-from-civil algorithms (proleptic Gregorian calendar).
    static func daysFromCivil(year: Int64, month: Int64, day: Int64) -> Int64 {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }

    /// (year, month, day) of the day `days` after 1970-01-01 in the proleptic Gregorian calendar.
    public static func civilFromDays(_ days: Int64) -> (Int64, Int64, Int64) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let mp = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        return (yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }
}
