/// Why bytes are not a DNS message.
public enum DNSMessageError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The message ends inside a field that starts at this offset.
    case truncated(at: Int)
    /// A compression pointer at this offset points at or after itself, or out of the message.
    case badPointer(at: Int)
    /// A label type other than a plain length or a pointer (RFC 6891 §5 retired the others).
    case unsupportedLabel(at: Int)
    /// A name longer than 255 bytes once its pointers are followed.
    case nameTooLong(at: Int)
    /// An A record that is not 4 bytes, a TXT string that overruns its record, and the like.
    case badRecordData(DNSRecordType, at: Int)

    public var description: String {
        switch self {
        case .truncated(let offset): "the message ends in the middle of a field at byte \(offset)"
        case .badPointer(let offset): "a name compression pointer at byte \(offset) does not point back into the message"
        case .unsupportedLabel(let offset): "an unsupported label type at byte \(offset)"
        case .nameTooLong(let offset): "the name at byte \(offset) is longer than 255 bytes"
        case .badRecordData(let type, let offset): "the \(type) record data at byte \(offset) is malformed"
        }
    }
}

extension DNSMessage {
    /// Reads a message, following name compression pointers (RFC 1035 §4.1.4) in owner
    /// names and in the names inside MX, CNAME, PTR and NS data. Bytes after the last
    /// record are ignored.
    public init(decoding bytes: [UInt8]) throws(DNSMessageError) {
        var reader = Reader(bytes: bytes)
        id = try reader.u16()
        header = Header(word: try reader.u16())
        let counts = [try reader.u16(), try reader.u16(), try reader.u16(), try reader.u16()].map(Int.init)
        questions = []
        for _ in 0..<counts[0] {
            questions.append(DNSQuestion(name: try reader.name(), type: DNSRecordType(rawValue: try reader.u16()), classValue: try reader.u16()))
        }
        answers = try (0..<counts[1]).map { _ throws(DNSMessageError) in try reader.record() }
        authorities = try (0..<counts[2]).map { _ throws(DNSMessageError) in try reader.record() }
        additionals = try (0..<counts[3]).map { _ throws(DNSMessageError) in try reader.record() }
    }

    /// A cursor over the message; names may point anywhere before themselves.
    struct Reader {
        let bytes: [UInt8]
        var offset = 0

        mutating func u8() throws(DNSMessageError) -> UInt8 {
            guard offset < bytes.count else { throw .truncated(at: offset) }
            defer { offset += 1 }
            return bytes[offset]
        }

        mutating func u16() throws(DNSMessageError) -> UInt16 {
            guard offset + 2 <= bytes.count else { throw .truncated(at: offset) }
            defer { offset += 2 }
            return UInt16(bytes[offset]) << 8 | UInt16(bytes[offset + 1])
        }

        mutating func u32() throws(DNSMessageError) -> UInt32 {
            UInt32(try u16()) << 16 | UInt32(try u16())
        }

        mutating func take(_ count: Int) throws(DNSMessageError) -> [UInt8] {
            guard count >= 0, offset + count <= bytes.count else { throw .truncated(at: offset) }
            defer { offset += count }
            return Array(bytes[offset..<offset + count])
        }

        /// A name at the cursor. A pointer must point strictly before the place it was
        /// read from, so a chain of pointers always ends: no loop can be built.
        mutating func name() throws(DNSMessageError) -> DNSName {
            let start = offset
            var labels: [[UInt8]] = []
            var length = 1
            var position = offset
            // Where the cursor continues: after the first pointer, or after the final zero.
            var resume: Int?
            while true {
                guard position < bytes.count else { throw .truncated(at: position) }
                let byte = bytes[position]
                switch byte & 0xC0 {
                case 0x00:
                    if byte == 0 {
                        offset = resume ?? position + 1
                        return DNSName(uncheckedLabels: labels)
                    }
                    let count = Int(byte)
                    guard position + 1 + count <= bytes.count else { throw .truncated(at: position) }
                    length += 1 + count
                    guard length <= DNSName.maxWireLength else { throw .nameTooLong(at: start) }
                    labels.append(Array(bytes[(position + 1)...(position + count)]))
                    position += 1 + count
                case 0xC0:
                    guard position + 1 < bytes.count else { throw .truncated(at: position) }
                    let target = Int(byte & 0x3F) << 8 | Int(bytes[position + 1])
                    guard target < position else { throw .badPointer(at: position) }
                    if resume == nil { resume = position + 2 }
                    position = target
                default:
                    throw .unsupportedLabel(at: position)
                }
            }
        }

        mutating func record() throws(DNSMessageError) -> DNSResourceRecord {
            let owner = try name()
            let type = DNSRecordType(rawValue: try u16())
            let classValue = try u16()
            let ttl = try u32()
            let length = Int(try u16())
            let start = offset
            guard start + length <= bytes.count else { throw .truncated(at: start) }
            let end = start + length
            let data: DNSRecordData
            switch type {
            case .a:
                guard length == 4 else { throw .badRecordData(type, at: start) }
                data = .a(.v4(try take(4)))
            case .aaaa:
                guard length == 16 else { throw .badRecordData(type, at: start) }
                data = .aaaa(.v6(try take(16)))
            case .txt:
                var strings: [[UInt8]] = []
                while offset < end {
                    let count = Int(try u8())
                    guard offset + count <= end else { throw .badRecordData(type, at: start) }
                    strings.append(try take(count))
                }
                // RFC 1035 §3.3.14: one or more character-strings.
                guard !strings.isEmpty else { throw .badRecordData(type, at: start) }
                data = .txt(strings)
            case .mx:
                guard length >= 3 else { throw .badRecordData(type, at: start) }
                let preference = try u16()
                data = .mx(preference: preference, exchange: try name())
            case .cname:
                data = .cname(try name())
            case .ptr:
                data = .ptr(try name())
            case .ns:
                data = .ns(try name())
            default:
                data = .other(try take(length))
            }
            guard offset == end else { throw .badRecordData(type, at: start) }
            return DNSResourceRecord(name: owner, type: type, classValue: classValue, ttl: ttl, data: data)
        }
    }
}
