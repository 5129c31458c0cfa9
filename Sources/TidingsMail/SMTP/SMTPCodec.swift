import Foundation

/// A server's reply (RFC 5321 §4.2): a three-digit code, an enhanced status code when the
/// server gives one (RFC 3463), and the text of every line.
public struct SMTPReply: Sendable, Equatable, CustomStringConvertible {
    public var code: Int
    /// `class.subject.detail`, e.g. `5.1.1`.
    public var enhancedCode: String?
    public var lines: [String]

    public var isPositive: Bool { (200..<300).contains(code) }
    public var isIntermediate: Bool { (300..<400).contains(code) }
    public var isTransient: Bool { (400..<500).contains(code) }
    public var isPermanent: Bool { (500..<600).contains(code) }
    /// A permanent failure about the mailbox itself (5.1.x: unknown user, bad address, …).
    public var isMailboxFailure: Bool { isPermanent && (enhancedCode?.hasPrefix("5.1.") ?? (code == 550 || code == 553)) }

    /// The reply as a person would read it: code and text, lines joined.
    public var description: String {
        "\(code) " + lines.joined(separator: " / ")
    }
}

public struct SMTPProtocolError: Error, Equatable, CustomStringConvertible {
    public var description: String
}

/// Reads replies from the bytes a server sends, across as many reads as it takes.
public struct SMTPReplyParser: Sendable {
    private var buffer: [UInt8] = []
    private var pending: (code: Int, lines: [String])?

    /// The longest reply line accepted (RFC 5321 §4.5.3.1.5 says 512 octets; servers exceed it).
    public static let maxLineLength = 4096
    /// The most lines one reply may have.
    public static let maxLines = 200

    public init() {}

    /// Whether bytes were received that do not yet make a whole reply.
    public var hasPartialReply: Bool { !buffer.isEmpty || pending != nil }

    /// Adds received bytes; returns the replies they complete.
    public mutating func consume(_ bytes: some Sequence<UInt8>) throws -> [SMTPReply] {
        buffer.append(contentsOf: bytes)
        var replies: [SMTPReply] = []
        while let newline = buffer.firstIndex(of: 0x0A) {
            var line = Array(buffer[..<newline])
            buffer.removeFirst(newline + 1)
            if line.last == 0x0D { line.removeLast() }
            if let reply = try take(line) { replies.append(reply) }
        }
        guard buffer.count <= Self.maxLineLength else {
            throw SMTPProtocolError(description: "The server sent a line longer than \(Self.maxLineLength) bytes.")
        }
        return replies
    }

    private mutating func take(_ line: [UInt8]) throws -> SMTPReply? {
        guard line.count <= Self.maxLineLength else {
            throw SMTPProtocolError(description: "The server sent a line longer than \(Self.maxLineLength) bytes.")
        }
        guard line.count >= 3, line[0...2].allSatisfy({ (0x30...0x39).contains($0) }), (0x32...0x35).contains(line[0]),
              line.count == 3 || line[3] == 0x20 || line[3] == 0x2D else {
            throw SMTPProtocolError(description: "The server's reply is not an SMTP reply: \(Self.printable(line))")
        }
        let code = Int(String(decoding: line[0...2], as: UTF8.self))!
        let text = line.count > 4 ? String(decoding: line[4...], as: UTF8.self) : ""
        let isLast = line.count == 3 || line[3] == 0x20
        var current = pending ?? (code, [])
        guard current.code == code else {
            throw SMTPProtocolError(description: "The server's multi-line reply changed its code from \(current.code) to \(code).")
        }
        current.lines.append(text)
        guard current.lines.count <= Self.maxLines else {
            throw SMTPProtocolError(description: "The server's reply has more than \(Self.maxLines) lines.")
        }
        if !isLast {
            pending = current
            return nil
        }
        pending = nil
        return SMTPReply(code: code, enhancedCode: Self.enhancedCode(current.lines.last ?? "", replyCode: code), lines: current.lines)
    }

    /// `X.Y.Z` at the start of the text, when its class matches the reply's (RFC 3463).
    static func enhancedCode(_ text: String, replyCode: Int) -> String? {
        guard let token = text.split(separator: " ", maxSplits: 1).first else { return nil }
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, let klass = Int(parts[0]), [2, 4, 5].contains(klass), klass == replyCode / 100,
              parts[1].count <= 3, parts[2].count <= 3, Int(parts[1]) != nil, Int(parts[2]) != nil else { return nil }
        return String(token)
    }

    /// A line as it may be shown in an error: control bytes as `?`, cut at 200.
    static func printable(_ bytes: [UInt8]) -> String {
        String(decoding: bytes.prefix(200).map { $0 < 0x20 || $0 == 0x7F ? 0x3F : $0 }, as: UTF8.self)
    }
}

/// What a server offers in its EHLO reply.
public struct SMTPCapabilities: Sendable, Equatable {
    public var startTLS = false
    public var pipelining = false
    public var eightBitMIME = false
    public var smtpUTF8 = false
    public var enhancedStatusCodes = false
    /// The largest message accepted, if the server says (0: no limit stated).
    public var maxSize: Int?
    /// Upper-cased mechanism names.
    public var authMechanisms: Set<String> = []

    public init() {}

    /// From a 250 reply to EHLO: every line after the greeting is a keyword and its parameters.
    public init(ehlo reply: SMTPReply) {
        for line in reply.lines.dropFirst() {
            let words = line.split(separator: " ").map { $0.uppercased() }
            guard let keyword = words.first else { continue }
            switch keyword {
            case "STARTTLS": startTLS = true
            case "PIPELINING": pipelining = true
            case "8BITMIME": eightBitMIME = true
            case "SMTPUTF8": smtpUTF8 = true
            case "ENHANCEDSTATUSCODES": enhancedStatusCodes = true
            case "SIZE": maxSize = words.count > 1 ? Int(words[1]) : nil
            case "AUTH": authMechanisms.formUnion(words.dropFirst())
            default:
                // Old servers announce AUTH=LOGIN.
                if keyword.hasPrefix("AUTH=") { authMechanisms.formUnion(keyword.dropFirst(5).split(separator: " ").map(String.init)) }
            }
        }
    }
}

/// The commands a client sends, each one line ending in CRLF. Values that reach a command
/// are checked first: none can add a line of its own.
public enum SMTPCommand: Sendable, Equatable {
    case ehlo(String)
    case helo(String)
    case startTLS
    case authPlain(username: String, password: String)
    case authLogin
    /// One step of AUTH LOGIN: a user name or password, base64.
    case authLoginStep(String)
    case mailFrom(String, size: Int?, eightBit: Bool, smtpUTF8: Bool)
    case rcptTo(String)
    case data
    case reset
    case quit

    public func encoded() throws -> [UInt8] {
        let line: String
        switch self {
        case .ehlo(let domain): line = "EHLO \(try Self.checked(domain))"
        case .helo(let domain): line = "HELO \(try Self.checked(domain))"
        case .startTLS: line = "STARTTLS"
        case .authPlain(let username, let password):
            let token = Data([0] + Array(try Self.checked(username).utf8) + [0] + Array(try Self.checked(password).utf8)).base64EncodedString()
            line = "AUTH PLAIN \(token)"
        case .authLogin: line = "AUTH LOGIN"
        case .authLoginStep(let value): line = Data(try Self.checked(value).utf8).base64EncodedString()
        case .mailFrom(let address, let size, let eightBit, let smtpUTF8):
            var parameters = ""
            if let size { parameters += " SIZE=\(size)" }
            if eightBit { parameters += " BODY=8BITMIME" }
            if smtpUTF8 { parameters += " SMTPUTF8" }
            line = "MAIL FROM:<\(try Self.checked(address))>\(parameters)"
        case .rcptTo(let address): line = "RCPT TO:<\(try Self.checked(address))>"
        case .data: line = "DATA"
        case .reset: line = "RSET"
        case .quit: line = "QUIT"
        }
        return Array((line + "\r\n").utf8)
    }

    /// A value with no CR, LF, NUL or `<`/`>` that could end the command early.
    static func checked(_ value: String) throws -> String {
        guard !value.unicodeScalars.contains(where: { $0 == "\r" || $0 == "\n" || $0 == "\0" || $0 == "<" || $0 == ">" }) else {
            throw SMTPProtocolError(description: "A command value contains a line break or an angle bracket.")
        }
        return value
    }
}

/// The message text as DATA sends it (RFC 5321 §4.5.2): CRLF line ends, a `.` doubled at the
/// start of every line that has one, and the `CRLF.CRLF` terminator.
public enum SMTPData {
    public static func encode(_ message: [UInt8]) -> [UInt8] {
        var output: [UInt8] = []
        output.reserveCapacity(message.count + message.count / 50 + 5)
        var lineStart = true
        var index = 0
        while index < message.count {
            let byte = message[index]
            if lineStart, byte == 0x2E { output.append(0x2E) }
            if byte == 0x0D, index + 1 < message.count, message[index + 1] == 0x0A {
                output += [0x0D, 0x0A]
                index += 2
                lineStart = true
                continue
            }
            if byte == 0x0A || byte == 0x0D {
                // A bare LF or CR becomes a line end: never sent bare.
                output += [0x0D, 0x0A]
                index += 1
                lineStart = true
                continue
            }
            output.append(byte)
            lineStart = false
            index += 1
        }
        if !lineStart { output += [0x0D, 0x0A] }
        output += Array(".\r\n".utf8)
        return output
    }
}
