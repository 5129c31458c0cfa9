/// A DNS message (RFC 1035 §4): a query Tidings sends, or the answer it reads. Encoding and
/// decoding are pure; `DNSResolver` moves the bytes.
public struct DNSMessage: Sendable, Equatable {
    public var id: UInt16
    public var header: Header
    public var questions: [DNSQuestion]
    public var answers: [DNSResourceRecord]
    public var authorities: [DNSResourceRecord]
    public var additionals: [DNSResourceRecord]

    public init(
        id: UInt16, header: Header, questions: [DNSQuestion], answers: [DNSResourceRecord] = [],
        authorities: [DNSResourceRecord] = [], additionals: [DNSResourceRecord] = []
    ) {
        self.id = id
        self.header = header
        self.questions = questions
        self.answers = answers
        self.authorities = authorities
        self.additionals = additionals
    }

    /// The flags of the second header word (RFC 1035 §4.1.1).
    public struct Header: Sendable, Equatable {
        public var isResponse = false
        public var opcode: UInt8 = 0
        public var isAuthoritative = false
        /// TC: the answer did not fit; ask again over TCP.
        public var isTruncated = false
        public var recursionDesired = true
        public var recursionAvailable = false
        public var responseCode: DNSResponseCode = .noError

        public init() {}

        var word: UInt16 {
            var word: UInt16 = 0
            if isResponse { word |= 0x8000 }
            word |= UInt16(opcode & 0x0F) << 11
            if isAuthoritative { word |= 0x0400 }
            if isTruncated { word |= 0x0200 }
            if recursionDesired { word |= 0x0100 }
            if recursionAvailable { word |= 0x0080 }
            word |= UInt16(responseCode.rawValue & 0x0F)
            return word
        }

        init(word: UInt16) {
            isResponse = word & 0x8000 != 0
            opcode = UInt8((word >> 11) & 0x0F)
            isAuthoritative = word & 0x0400 != 0
            isTruncated = word & 0x0200 != 0
            recursionDesired = word & 0x0100 != 0
            recursionAvailable = word & 0x0080 != 0
            responseCode = DNSResponseCode(rawValue: UInt8(word & 0x0F))
        }
    }

    /// The largest answer over UDP Tidings announces (EDNS0, RFC 6891): the size the DNS
    /// flag day of 2020 settled on, which avoids IP fragmentation.
    public static let udpPayloadSize: UInt16 = 1232

    /// A recursive query for one name and type, announcing `udpPayloadSize` with EDNS0
    /// unless `edns` is false.
    public static func query(id: UInt16, name: DNSName, type: DNSRecordType, edns: Bool = true) -> DNSMessage {
        var message = DNSMessage(id: id, header: Header(), questions: [DNSQuestion(name: name, type: type)])
        if edns {
            message.additionals = [DNSResourceRecord(name: .root, type: .opt, classValue: udpPayloadSize, ttl: 0, data: .other([]))]
        }
        return message
    }

    /// The message on the wire, without name compression (a query names one name).
    public func encoded() -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(512)
        func put16(_ value: UInt16) { bytes += [UInt8(value >> 8), UInt8(value & 0xFF)] }
        func put32(_ value: UInt32) { put16(UInt16(value >> 16)); put16(UInt16(value & 0xFFFF)) }
        func putName(_ name: DNSName) {
            for label in name.labels {
                bytes.append(UInt8(label.count))
                bytes += label
            }
            bytes.append(0)
        }
        put16(id)
        put16(header.word)
        for count in [questions.count, answers.count, authorities.count, additionals.count] { put16(UInt16(count)) }
        for question in questions {
            putName(question.name)
            put16(question.type.rawValue)
            put16(question.classValue)
        }
        for record in answers + authorities + additionals {
            putName(record.name)
            put16(record.type.rawValue)
            put16(record.classValue)
            put32(record.ttl)
            let data = record.data.encoded()
            put16(UInt16(data.count))
            bytes += data
        }
        return bytes
    }
}

/// The RCODE of a response (RFC 1035 §4.1.1, RFC 6895 §2.3).
public struct DNSResponseCode: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
    public var rawValue: UInt8

    public init(rawValue: UInt8) {
        self.rawValue = rawValue
    }

    public static let noError = DNSResponseCode(rawValue: 0)
    public static let formatError = DNSResponseCode(rawValue: 1)
    public static let serverFailure = DNSResponseCode(rawValue: 2)
    /// NXDOMAIN: the name does not exist.
    public static let nameError = DNSResponseCode(rawValue: 3)
    public static let notImplemented = DNSResponseCode(rawValue: 4)
    public static let refused = DNSResponseCode(rawValue: 5)

    public var description: String {
        switch rawValue {
        case 0: "NOERROR"
        case 1: "FORMERR"
        case 2: "SERVFAIL"
        case 3: "NXDOMAIN"
        case 4: "NOTIMP"
        case 5: "REFUSED"
        default: "RCODE \(rawValue)"
        }
    }
}

/// A record type (RFC 1035 §3.2.2 and later).
public struct DNSRecordType: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
    public var rawValue: UInt16

    public init(rawValue: UInt16) {
        self.rawValue = rawValue
    }

    public static let a = DNSRecordType(rawValue: 1)
    public static let ns = DNSRecordType(rawValue: 2)
    public static let cname = DNSRecordType(rawValue: 5)
    public static let soa = DNSRecordType(rawValue: 6)
    public static let ptr = DNSRecordType(rawValue: 12)
    public static let mx = DNSRecordType(rawValue: 15)
    public static let txt = DNSRecordType(rawValue: 16)
    public static let aaaa = DNSRecordType(rawValue: 28)
    /// The EDNS0 pseudo-record (RFC 6891).
    public static let opt = DNSRecordType(rawValue: 41)

    public var description: String {
        switch self {
        case .a: "A"
        case .ns: "NS"
        case .cname: "CNAME"
        case .soa: "SOA"
        case .ptr: "PTR"
        case .mx: "MX"
        case .txt: "TXT"
        case .aaaa: "AAAA"
        case .opt: "OPT"
        default: "TYPE\(rawValue)"
        }
    }
}

public struct DNSQuestion: Sendable, Equatable {
    public var name: DNSName
    public var type: DNSRecordType
    /// 1: IN, the Internet.
    public var classValue: UInt16

    public init(name: DNSName, type: DNSRecordType, classValue: UInt16 = 1) {
        self.name = name
        self.type = type
        self.classValue = classValue
    }
}

public struct DNSResourceRecord: Sendable, Equatable {
    public var name: DNSName
    public var type: DNSRecordType
    /// The class (1, IN), or for OPT the UDP payload size.
    public var classValue: UInt16
    public var ttl: UInt32
    public var data: DNSRecordData

    public init(name: DNSName, type: DNSRecordType, classValue: UInt16 = 1, ttl: UInt32, data: DNSRecordData) {
        self.name = name
        self.type = type
        self.classValue = classValue
        self.ttl = ttl
        self.data = data
    }
}

/// The data of the record types Tidings reads; others are kept as bytes.
public enum DNSRecordData: Sendable, Equatable {
    case a(IPAddress)
    case aaaa(IPAddress)
    /// The character-strings of one TXT record, in order (RFC 1035 §3.3.14).
    case txt([[UInt8]])
    case mx(preference: UInt16, exchange: DNSName)
    case cname(DNSName)
    case ptr(DNSName)
    case ns(DNSName)
    case other([UInt8])

    /// A TXT record's strings joined without separators, as SPF (RFC 7208 §3.3), DKIM
    /// (RFC 6376 §3.6.2.2) and DMARC read them. Bytes that are not UTF-8 become U+FFFD.
    public var text: String? {
        guard case .txt(let strings) = self else { return nil }
        return String(decoding: strings.flatMap { $0 }, as: UTF8.self)
    }

    /// An A or AAAA record's address.
    public var address: IPAddress? {
        switch self {
        case .a(let address), .aaaa(let address): address
        default: nil
        }
    }

    func encoded() -> [UInt8] {
        func name(_ name: DNSName) -> [UInt8] {
            name.labels.flatMap { [UInt8($0.count)] + $0 } + [0]
        }
        switch self {
        case .a(let address), .aaaa(let address): return address.bytes
        case .txt(let strings): return strings.flatMap { [UInt8(min($0.count, 255))] + $0.prefix(255) }
        case .mx(let preference, let exchange): return [UInt8(preference >> 8), UInt8(preference & 0xFF)] + name(exchange)
        case .cname(let target), .ptr(let target), .ns(let target): return name(target)
        case .other(let bytes): return bytes
        }
    }
}
