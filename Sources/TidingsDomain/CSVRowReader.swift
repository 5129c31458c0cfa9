/// One record read from a CSV file.
public struct CSVRow: Equatable, Sendable {
    public var fields: [String]
    /// 1-based physical line number on which the record starts (a quoted field may span lines).
    public var line: Int

    public init(fields: [String], line: Int) {
        self.fields = fields
        self.line = line
    }
}

/// A record that could not be read. `line` is the physical line on which the
/// record starts; `message` describes the problem and never repeats the data.
public struct CSVError: Error, Equatable, Sendable {
    public var line: Int
    public var message: String

    public init(line: Int, message: String) {
        self.line = line
        self.message = message
    }
}

/// An incremental RFC 4180 CSV reader: feed it the bytes of a file chunk by
/// chunk (for example as they arrive in an HTTP upload) and it returns each
/// record as soon as it is complete, holding at most one record in memory.
///
/// - Fields are separated by `,`; records end at CRLF, LF or a lone CR.
/// - A field may be quoted with `"`; inside quotes `""` is a quote and commas
///   and line breaks are part of the field. A quote inside an unquoted field
///   is kept as is.
/// - The input must be UTF-8; a byte order mark at the very start is skipped.
/// - Empty lines produce no record but count towards line numbers.
/// - A bad record (a character after a closing quote, invalid UTF-8, a field
///   longer than `maxFieldBytes`, more than `maxFields` fields) is returned as
///   a `CSVError` and reading continues with the next record; the rest of the
///   bad record is skipped without being buffered.
public struct CSVRowReader: Sendable {
    /// The longest field accepted, in bytes of UTF-8 (64 KiB).
    public static let maxFieldBytes: Int = 64 * 1024
    /// The most fields accepted in one record.
    public static let maxFields: Int = 1000

    private enum State: UInt8, Sendable {
        /// Between records: no byte of the next record has been seen yet.
        case recordStart
        /// At the start of a field after a comma (or the first byte of a record).
        case fieldStart
        /// Inside a field that did not start with a quote.
        case unquoted
        /// Inside a quoted field.
        case quoted
        /// Just after a quote inside a quoted field: either `""` or the closing quote.
        case quoteInQuoted
    }

    private static let comma: UInt8 = 0x2C
    private static let quote: UInt8 = 0x22
    private static let cr: UInt8 = 0x0D
    private static let lf: UInt8 = 0x0A
    private static let bom: (UInt8, UInt8, UInt8) = (0xEF, 0xBB, 0xBF)

    private var state: State = .recordStart
    /// The physical line of the next byte.
    private var line = 1
    /// The physical line on which the current record started.
    private var recordLine = 1
    private var previousWasCR = false
    /// While true, the first bytes are compared with the byte order mark.
    private var atStreamStart = true
    /// How many bytes of the byte order mark have been matched so far.
    private var bomMatched = 0
    /// The bytes of the current field (after unescaping `""`).
    private var field: [UInt8] = []
    /// The completed fields of the current record.
    private var fields: [String] = []
    /// The number of completed fields of the current record, counted even while skipping.
    private var fieldCount = 0
    /// Set when the current record is bad: the rest of it is skipped.
    private var recordError: CSVError?
    private var lastRecordWidth = 0

    public init() {}

    /// Feeds the next chunk of bytes; returns the records completed by it.
    public mutating func feed(_ bytes: some Sequence<UInt8>) -> [Result<CSVRow, CSVError>] {
        var out: [Result<CSVRow, CSVError>] = []
        let done: Void? = bytes.withContiguousStorageIfAvailable { buffer in
            consume(buffer, into: &out)
        }
        if done == nil {
            let copy = Array(bytes)
            copy.withUnsafeBufferPointer { buffer in
                consume(buffer, into: &out)
            }
        }
        return out
    }

    /// Signals the end of input; returns the last record if the input did not end with a newline.
    ///
    /// The reader is then reset and may be used for a new input.
    public mutating func finish() -> [Result<CSVRow, CSVError>] {
        var out: [Result<CSVRow, CSVError>] = []
        if atStreamStart {
            // The input ended inside what looked like a byte order mark: it is data.
            atStreamStart = false
            replayPartialBOM(into: &out)
        }
        switch state {
        case .recordStart:
            break
        case .quoted:
            // The root cause wins over any earlier error in this record (such as
            // an over-long field, which an unterminated quote usually produces).
            out.append(.failure(CSVError(line: recordLine, message: "unterminated quoted field")))
        case .fieldStart, .unquoted, .quoteInQuoted:
            endField()
            endRecord(into: &out)
        }
        self = CSVRowReader()
        return out
    }

    // MARK: - State machine

    private mutating func consume(_ buffer: UnsafeBufferPointer<UInt8>, into out: inout [Result<CSVRow, CSVError>]) {
        var index = 0
        let count = buffer.count
        while atStreamStart && index < count {
            let byte = buffer[index]
            index += 1
            let expected: UInt8
            switch bomMatched {
            case 0: expected = Self.bom.0
            case 1: expected = Self.bom.1
            default: expected = Self.bom.2
            }
            if byte == expected {
                bomMatched += 1
                if bomMatched == 3 { atStreamStart = false }
            } else {
                atStreamStart = false
                replayPartialBOM(into: &out)
                process(byte, into: &out)
            }
        }
        while index < count {
            process(buffer[index], into: &out)
            index += 1
        }
    }

    private mutating func replayPartialBOM(into out: inout [Result<CSVRow, CSVError>]) {
        if bomMatched > 0 { process(Self.bom.0, into: &out) }
        if bomMatched > 1 { process(Self.bom.1, into: &out) }
        bomMatched = 0
    }

    @inline(__always)
    private mutating func process(_ byte: UInt8, into out: inout [Result<CSVRow, CSVError>]) {
        // Physical line counting: CR, LF and CRLF each end one line, whether or
        // not they are inside quotes.
        let afterCR = previousWasCR
        previousWasCR = byte == Self.cr
        let isNewline = byte == Self.cr || byte == Self.lf
        if byte == Self.cr || (byte == Self.lf && !afterCR) { line += 1 }

        switch state {
        case .unquoted:
            if byte == Self.comma {
                endField()
                startNextField()
            } else if isNewline {
                endField()
                endRecord(into: &out)
            } else {
                append(byte)
            }
        case .quoted:
            if byte == Self.quote {
                state = .quoteInQuoted
            } else {
                append(byte)
            }
        case .recordStart:
            // A line break here ends an empty line (or is the LF of a CRLF).
            if isNewline { return }
            recordLine = line
            fieldStart(byte, into: &out)
        case .fieldStart:
            fieldStart(byte, into: &out)
        case .quoteInQuoted:
            if byte == Self.quote {
                append(Self.quote)
                state = .quoted
            } else if byte == Self.comma {
                endField()
                startNextField()
            } else if isNewline {
                endField()
                endRecord(into: &out)
            } else {
                // Skip the rest of the record, still honouring quotes so that a
                // later quoted field with a line break does not end it early.
                fail("unexpected character after closing quote")
                state = .unquoted
            }
        }
    }

    @inline(__always)
    private mutating func fieldStart(_ byte: UInt8, into out: inout [Result<CSVRow, CSVError>]) {
        switch byte {
        case Self.quote:
            state = .quoted
        case Self.comma:
            endField()
            startNextField()
        case Self.cr, Self.lf:
            endField()
            endRecord(into: &out)
        default:
            append(byte)
            state = .unquoted
        }
    }

    @inline(__always)
    private mutating func append(_ byte: UInt8) {
        if recordError != nil { return }
        if field.count >= Self.maxFieldBytes {
            fail("field \(fieldCount + 1) is longer than \(Self.maxFieldBytes) bytes")
            return
        }
        field.append(byte)
    }

    /// Called after a comma: the next field begins.
    private mutating func startNextField() {
        state = .fieldStart
        if fieldCount >= Self.maxFields && recordError == nil {
            fail("more than \(Self.maxFields) fields")
        }
    }

    private mutating func endField() {
        fieldCount += 1
        if recordError != nil { return }
        if let text = Self.decode(field) {
            fields.append(text)
            field.removeAll(keepingCapacity: true)
        } else {
            fail("field \(fieldCount) is not valid UTF-8")
        }
    }

    private mutating func endRecord(into out: inout [Result<CSVRow, CSVError>]) {
        if let error = recordError {
            out.append(.failure(error))
            recordError = nil
        } else {
            lastRecordWidth = fields.count
            out.append(.success(CSVRow(fields: fields, line: recordLine)))
        }
        fields = []
        fields.reserveCapacity(lastRecordWidth)
        field.removeAll(keepingCapacity: true)
        fieldCount = 0
        state = .recordStart
    }

    /// Marks the current record as bad (keeping the first problem found) and
    /// drops what was buffered for it.
    private mutating func fail(_ message: String) {
        if recordError == nil {
            recordError = CSVError(line: recordLine, message: message)
        }
        field.removeAll(keepingCapacity: true)
        fields.removeAll()
    }

    /// Decodes UTF-8, or returns nil if the bytes are not valid UTF-8.
    private static func decode(_ bytes: [UInt8]) -> String? {
        bytes.withUnsafeBufferPointer { buffer -> String? in
            isValidUTF8(buffer) ? String(decoding: buffer, as: UTF8.self) : nil
        }
    }

    /// Strict UTF-8 validation (no overlong forms, no surrogates, nothing above
    /// U+10FFFF), written out because the generic `String(validating:as:)` is
    /// not specialised across the module boundary and dominated the profile.
    private static func isValidUTF8(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        var index = 0
        let count = bytes.count
        while index < count {
            let lead = bytes[index]
            if lead < 0x80 {
                index += 1
                continue
            }
            let length: Int
            var low: UInt8 = 0x80
            var high: UInt8 = 0xBF
            switch lead {
            case 0xC2...0xDF: length = 2
            case 0xE0: length = 3; low = 0xA0
            case 0xE1...0xEC, 0xEE...0xEF: length = 3
            case 0xED: length = 3; high = 0x9F
            case 0xF0: length = 4; low = 0x90
            case 0xF1...0xF3: length = 4
            case 0xF4: length = 4; high = 0x8F
            default: return false
            }
            guard count - index >= length else { return false }
            let second = bytes[index + 1]
            guard second >= low && second <= high else { return false }
            var next = index + 2
            while next < index + length {
                guard bytes[next] & 0xC0 == 0x80 else { return false }
                next += 1
            }
            index += length
        }
        return true
    }
}
