import Foundation
import TidingsDomain

/// A person or role in a header: an optional display name and an address.
public struct Mailbox: Sendable, Equatable {
    public var displayName: String
    public var address: EmailAddress

    public init(_ displayName: String = "", _ address: EmailAddress) {
        self.displayName = displayName
        self.address = address
    }
}

/// A file sent with a message.
public struct Attachment: Sendable, Equatable {
    public var filename: String
    public var contentType: String
    public var content: [UInt8]

    public init(filename: String, contentType: String, content: [UInt8]) {
        self.filename = filename
        self.contentType = contentType
        self.content = content
    }
}

/// Everything an outgoing message is built from.
public struct OutgoingMessage: Sendable, Equatable {
    public var from: Mailbox
    public var to: [Mailbox]
    public var cc: [Mailbox]
    public var replyTo: Mailbox?
    public var subject: String
    /// `<id@domain>`, stable across every attempt to deliver the message.
    public var messageId: String
    public var date: Date
    public var text: String
    public var html: String?
    public var attachments: [Attachment]
    /// Further headers, already checked against the allowed list by the caller.
    public var extraHeaders: [(name: String, value: String)]

    public init(
        from: Mailbox, to: [Mailbox], cc: [Mailbox] = [], replyTo: Mailbox? = nil, subject: String, messageId: String,
        date: Date, text: String, html: String? = nil, attachments: [Attachment] = [], extraHeaders: [(name: String, value: String)] = []
    ) {
        self.from = from
        self.to = to
        self.cc = cc
        self.replyTo = replyTo
        self.subject = subject
        self.messageId = messageId
        self.date = date
        self.text = text
        self.html = html
        self.attachments = attachments
        self.extraHeaders = extraHeaders
    }

    public static func == (lhs: OutgoingMessage, rhs: OutgoingMessage) -> Bool {
        lhs.from == rhs.from && lhs.to == rhs.to && lhs.cc == rhs.cc && lhs.replyTo == rhs.replyTo && lhs.subject == rhs.subject
            && lhs.messageId == rhs.messageId && lhs.date == rhs.date && lhs.text == rhs.text && lhs.html == rhs.html
            && lhs.attachments == rhs.attachments && lhs.extraHeaders.map(\.name) == rhs.extraHeaders.map(\.name)
            && lhs.extraHeaders.map(\.value) == rhs.extraHeaders.map(\.value)
    }
}

/// Builds RFC 5322 / MIME (RFC 2045–2049) bytes: CRLF line ends, no line over 998 octets,
/// headers folded near 78, non-ASCII header text as RFC 2047 encoded words, text parts in
/// 7bit when they can be and quoted-printable otherwise, attachments in base64,
/// `multipart/alternative` for text with HTML and `multipart/mixed` around attachments.
///
/// No header value can start a new header line: every CR, LF and other control character
/// in one becomes a space before it is written.
public enum MIMEBuilder {
    public static func build(_ message: OutgoingMessage, boundarySeed: String = UUID().uuidString) -> [UInt8] {
        var headers = HeaderWriter()
        headers.add("Date", rfc5322Date(message.date))
        headers.addMailboxes("From", [message.from])
        headers.addMailboxes("To", message.to)
        if !message.cc.isEmpty { headers.addMailboxes("Cc", message.cc) }
        if let replyTo = message.replyTo { headers.addMailboxes("Reply-To", [replyTo]) }
        headers.addText("Subject", message.subject)
        headers.add("Message-ID", message.messageId)
        for header in message.extraHeaders { headers.addText(header.name, header.value) }
        headers.add("MIME-Version", "1.0")

        let seed = String(seedHash(boundarySeed), radix: 16)
        let textPart = Part.text(message.text, subtype: "plain")
        var body: Part = message.html.map { html in
            Part.multipart("alternative", boundary: "=_tidings_alt_\(seed)", [textPart, Part.text(html, subtype: "html")])
        } ?? textPart
        if !message.attachments.isEmpty {
            body = Part.multipart("mixed", boundary: "=_tidings_mix_\(seed)", [body] + message.attachments.map(Part.attachment))
        }
        var output = headers.bytes
        body.write(into: &output)
        return output
    }

    /// `Mon, 30 Nov 2026 17:20:00 +0000`.
    static func rfc5322Date(_ date: Date) -> String {
        // By hand: a DateFormatter per message cost more than the rest of the headers.
        let seconds = Int64(date.timeIntervalSince1970.rounded(.down))
        let days = seconds >= 0 ? seconds / 86400 : (seconds - 86399) / 86400
        let secondOfDay = seconds - days * 86400
        // 1970-01-01 was a Thursday.
        let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][Int(((days % 7) + 7) % 7)]
        let (year, month, day) = Timestamp.civilFromDays(days)
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        func two(_ value: Int64) -> String { value < 10 ? "0\(value)" : "\(value)" }
        return "\(weekday), \(two(day)) \(months[Int(month - 1)]) \(year) \(two(secondOfDay / 3600)):\(two(secondOfDay / 60 % 60)):\(two(secondOfDay % 60)) +0000"
    }

    private static func seedHash(_ seed: String) -> UInt64 {
        // FNV-1a: a stable, short boundary suffix from the seed.
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in seed.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01B3
        }
        return hash
    }

    /// A MIME entity: its headers and encoded body.
    indirect enum Part {
        case leaf(headers: [String], body: [UInt8])
        case multipart(String, boundary: String, [Part])

        static func text(_ content: String, subtype: String) -> Part {
            let normalised = lines(of: content).joined(separator: "\r\n")
            let bytes = Array(normalised.utf8)
            if canSendAs7bit(bytes) {
                return .leaf(headers: ["Content-Type: text/\(subtype); charset=utf-8", "Content-Transfer-Encoding: 7bit"], body: bytes)
            }
            return .leaf(
                headers: ["Content-Type: text/\(subtype); charset=utf-8", "Content-Transfer-Encoding: quoted-printable"],
                body: QuotedPrintable.encode(bytes)
            )
        }

        static func attachment(_ attachment: Attachment) -> Part {
            let type = sanitisedContentType(attachment.contentType)
            let filename = HeaderWriter.parameter("filename", attachment.filename)
            let name = HeaderWriter.parameter("name", attachment.filename)
            return .leaf(
                headers: [
                    "Content-Type: \(type);\r\n \(name)", "Content-Transfer-Encoding: base64",
                    "Content-Disposition: attachment;\r\n \(filename)",
                ],
                body: base64Lines(attachment.content)
            )
        }

        func write(into output: inout [UInt8]) {
            switch self {
            case .leaf(let headers, let body):
                for header in headers { output += Array("\(header)\r\n".utf8) }
                output += Array("\r\n".utf8)
                output += body
                output += Array("\r\n".utf8)
            case .multipart(let subtype, let boundary, let parts):
                output += Array("Content-Type: multipart/\(subtype);\r\n boundary=\"\(boundary)\"\r\n\r\n".utf8)
                for part in parts {
                    output += Array("--\(boundary)\r\n".utf8)
                    part.write(into: &output)
                }
                output += Array("--\(boundary)--\r\n".utf8)
            }
        }
    }

    /// Lines of text, whatever their line ends (CRLF, LF or CR).
    static func lines(of text: String) -> [Substring] {
        text.replacingOccurrences(of: "\r\n", with: "\n").replacingOccurrences(of: "\r", with: "\n")
            .split(separator: "\n", omittingEmptySubsequences: false)
    }

    /// ASCII, lines of at most 76 octets, no line that could be read as a boundary.
    static func canSendAs7bit(_ bytes: [UInt8]) -> Bool {
        guard bytes.allSatisfy({ $0 < 0x80 && $0 != 0 }) else { return false }
        var lineLength = 0
        var lineStart = true
        for (index, byte) in bytes.enumerated() {
            if byte == 0x0D || byte == 0x0A {
                lineLength = 0
                lineStart = true
                continue
            }
            if lineStart, byte == 0x2D, index + 1 < bytes.count, bytes[index + 1] == 0x2D { return false }
            lineStart = false
            lineLength += 1
            if lineLength > 76 { return false }
        }
        return true
    }

    /// `type/subtype` if it looks like one, else `application/octet-stream`.
    static func sanitisedContentType(_ raw: String) -> String {
        let trimmed = raw.trimmingCharacters(in: .whitespaces).lowercased()
        let token: (Character) -> Bool = { $0.isASCII && ($0.isLetter || $0.isNumber || "!#$&-^_.+".contains($0)) }
        let parts = trimmed.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, parts.allSatisfy({ !$0.isEmpty && $0.count <= 127 && $0.allSatisfy(token) }) else {
            return "application/octet-stream"
        }
        return trimmed
    }

    /// Base64 in lines of 76 characters.
    static func base64Lines(_ bytes: [UInt8]) -> [UInt8] {
        let encoded = Array(Data(bytes).base64EncodedString().utf8)
        var output: [UInt8] = []
        output.reserveCapacity(encoded.count + encoded.count / 76 * 2)
        var index = 0
        while index < encoded.count {
            let end = min(index + 76, encoded.count)
            output += encoded[index..<end]
            if end < encoded.count { output += [0x0D, 0x0A] }
            index = end
        }
        return output
    }
}
