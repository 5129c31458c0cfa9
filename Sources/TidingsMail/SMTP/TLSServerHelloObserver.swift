import NIOCore

/// Reads the cipher suite from the server's ServerHello as it passes by, before the TLS
/// handler decrypts anything: the TLS library reports the version but not the suite. The
/// ServerHello travels in the clear in every TLS version (RFC 8446 §4.1.3, RFC 5246 §7.4.1.3).
final class TLSServerHelloObserver: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private var seen: [UInt8] = []
    private var done = false
    /// The negotiated suite's number, once the ServerHello was read.
    private(set) var cipher: UInt16?

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if !done {
            seen += unwrapInboundIn(data).readableBytesView
            switch Self.cipherSuite(in: seen) {
            case .found(let suite):
                cipher = suite
                done = true
            case .notServerHello:
                done = true
            case .needMore:
                if seen.count > 1 << 16 { done = true }
            }
            if done { seen = [] }
        }
        context.fireChannelRead(data)
    }

    enum Parse: Equatable {
        case found(UInt16), notServerHello, needMore
    }

    /// The cipher suite of a ServerHello at the start of `bytes` (the first TLS record).
    static func cipherSuite(in bytes: [UInt8]) -> Parse {
        // Record: type(1) = 22 handshake, version(2), length(2); then the handshake message:
        // type(1) = 2 ServerHello, length(3), legacy_version(2), random(32), session id (1 + n), suite(2).
        guard bytes.count >= 6 else { return bytes.first.map { $0 == 22 ? .needMore : .notServerHello } ?? .needMore }
        guard bytes[0] == 22, bytes[5] == 2 else { return .notServerHello }
        let sessionIDLength = 5 + 4 + 2 + 32
        guard bytes.count > sessionIDLength else { return .needMore }
        let suiteOffset = sessionIDLength + 1 + Int(bytes[sessionIDLength])
        guard bytes.count >= suiteOffset + 2 else { return .needMore }
        return .found(UInt16(bytes[suiteOffset]) << 8 | UInt16(bytes[suiteOffset + 1]))
    }

    /// The IANA name of a suite a server may choose with our client settings.
    static func name(_ suite: UInt16) -> String {
        switch suite {
        case 0x1301: "TLS_AES_128_GCM_SHA256"
        case 0x1302: "TLS_AES_256_GCM_SHA384"
        case 0x1303: "TLS_CHACHA20_POLY1305_SHA256"
        case 0xC02B: "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"
        case 0xC02C: "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"
        case 0xC02F: "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"
        case 0xC030: "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"
        case 0xCCA8: "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256"
        case 0xCCA9: "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"
        case 0xC009: "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA"
        case 0xC00A: "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA"
        case 0xC013: "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA"
        case 0xC014: "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA"
        case 0x009C: "TLS_RSA_WITH_AES_128_GCM_SHA256"
        case 0x009D: "TLS_RSA_WITH_AES_256_GCM_SHA384"
        case 0x002F: "TLS_RSA_WITH_AES_128_CBC_SHA"
        case 0x0035: "TLS_RSA_WITH_AES_256_CBC_SHA"
        default: "0x" + String(suite, radix: 16, uppercase: true)
        }
    }
}
