import Foundation

/// A workspace's own SMTP server, through which its messages leave.
public struct EmailServer: Sendable, Equatable {
    public enum Security: String, Sendable, CaseIterable {
        /// Implicit TLS from the first byte (usually port 465).
        case tls
        /// STARTTLS, required: no plaintext fallback (usually port 587).
        case starttls
        /// No encryption: allowed for loopback hosts only.
        case none
    }

    public var id: String
    public var workspaceId: String
    public var name: String
    public var host: String
    public var port: Int
    public var security: Security
    public var username: String?
    /// Write-only: never returned by the API, never logged.
    public var password: String?
    public var maxConnections: Int
    /// Messages per second; `nil` for no limit.
    public var rateLimit: Double?
    public var preset: String?
    public var isDefault: Bool
    /// SHA-256 digests (base64) of public keys (SPKI) the server's certificate must carry, on
    /// top of the usual certificate checks; empty for no pinning. Several, so that a new key can
    /// be pinned before the server switches to it.
    public var tlsPins: [String]
    public var createdAt: Date
    public var updatedAt: Date

    public init(
        id: String, workspaceId: String, name: String, host: String, port: Int, security: Security, username: String?, password: String?,
        maxConnections: Int, rateLimit: Double?, preset: String?, isDefault: Bool, tlsPins: [String] = [], createdAt: Date, updatedAt: Date
    ) {
        self.id = id
        self.workspaceId = workspaceId
        self.name = name
        self.host = host
        self.port = port
        self.security = security
        self.username = username
        self.password = password
        self.maxConnections = maxConnections
        self.rateLimit = rateLimit
        self.preset = preset
        self.isDefault = isDefault
        self.tlsPins = tlsPins
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }

    public static let maxNameLength = 100
    public static let maxConnectionsLimit = 50
    public static let defaultMaxConnections = 5

    public static let maxTLSPins = 10

    /// Pins as `openssl x509 -pubkey -noout | openssl pkey -pubin -outform der | openssl dgst
    /// -sha256 -binary | base64` prints them: the base64 of 32 bytes, optionally written
    /// `sha256/…`. Returned in canonical base64, in the order given, without repeats.
    public static func validatePins(_ raw: [String], field: String = "tlsPins") throws(DomainError) -> [String] {
        guard raw.count <= maxTLSPins else {
            throw .invalid("invalid_tls_pin", "At most \(maxTLSPins) pins; keep the current key's and the next one's.", field: field)
        }
        var pins: [String] = []
        for (index, entry) in raw.enumerated() {
            var text = entry.trimmingCharacters(in: .whitespaces)
            if text.lowercased().hasPrefix("sha256/") { text = String(text.dropFirst("sha256/".count)) }
            guard text.utf8.count <= 64, let digest = Data(base64Encoded: text), digest.count == 32 else {
                throw .invalid("invalid_tls_pin", """
                    Pin \(index + 1) is not the base64 of a SHA-256 digest (32 bytes) of the server's public key, as \
                    `openssl x509 -pubkey -noout -in cert.pem | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64` prints it.
                    """, field: field)
            }
            let pin = digest.base64EncodedString()
            if !pins.contains(pin) { pins.append(pin) }
        }
        return pins
    }

    /// A host name (letters, digits, dots and hyphens) or an IP address literal; lowercased.
    public static func validateHost(_ raw: String, field: String = "host") throws(DomainError) -> String {
        let host = raw.trimmingCharacters(in: .whitespaces).lowercased()
        guard !host.isEmpty, host.utf8.count <= 253 else {
            throw .invalid("invalid_host", "The host must be 1 to 253 characters.", field: field)
        }
        if isIPAddress(host) { return host }
        let labels = host.split(separator: ".", omittingEmptySubsequences: false)
        guard labels.allSatisfy(isHostLabel) else { throw .invalid("invalid_host", "'\(host.prefix(100))' is not a host name or IP address.", field: field) }
        return host
    }

    /// Whether `host` names this machine: `localhost`, 127.0.0.0/8 or ::1 (one rule for every
    /// connection Tidings makes: ``OutboundURLPolicy/isLoopback(_:)``).
    public static func isLoopback(_ host: String) -> Bool {
        OutboundURLPolicy.isLoopback(host)
    }

    static func isIPAddress(_ host: String) -> Bool {
        let parts = host.split(separator: ".", omittingEmptySubsequences: false)
        if parts.count == 4, parts.allSatisfy({ UInt8($0) != nil && !$0.isEmpty }) { return true }
        let bare = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        return bare.contains(":") && bare.allSatisfy { $0.isHexDigit || $0 == ":" || $0 == "." }
    }
}

/// Well-known SMTP services: choosing one fills host, port and security.
public struct EmailServerPreset: Sendable, Equatable {
    public var id: String
    public var label: String
    public var host: String
    public var port: Int
    public var security: EmailServer.Security
    /// The domain a sending domain's SPF record includes (`include:…`) to authorise the
    /// service's outgoing servers, as the service documents it. The SMTP host itself is
    /// only where mail is handed over, not where it leaves from.
    public var spfInclude: String?

    public init(id: String, label: String, host: String, port: Int, security: EmailServer.Security, spfInclude: String?) {
        self.id = id
        self.label = label
        self.host = host
        self.port = port
        self.security = security
        self.spfInclude = spfInclude
    }

    static let sesRegions = [
        "us-east-1", "us-east-2", "us-west-1", "us-west-2", "ca-central-1", "sa-east-1", "eu-west-1", "eu-west-2", "eu-west-3",
        "eu-central-1", "eu-central-2", "eu-north-1", "eu-south-1", "ap-south-1", "ap-northeast-1", "ap-northeast-2",
        "ap-northeast-3", "ap-southeast-1", "ap-southeast-2", "ap-southeast-3", "me-south-1", "me-central-1", "af-south-1",
        "il-central-1", "us-gov-west-1", "us-gov-east-1",
    ]

    /// Every preset, in the order the README's table lists them.
    public static let all: [EmailServerPreset] = sesRegions.map {
        EmailServerPreset(
            id: "amazon-ses-\($0)", label: "Amazon SES (\($0))", host: "email-smtp.\($0).amazonaws.com", port: 587, security: .starttls,
            spfInclude: "amazonses.com"
        )
    } + [
        EmailServerPreset(id: "google", label: "Google Workspace / Gmail", host: "smtp.gmail.com", port: 587, security: .starttls, spfInclude: "_spf.google.com"),
        EmailServerPreset(
            id: "microsoft-365", label: "Microsoft 365", host: "smtp.office365.com", port: 587, security: .starttls, spfInclude: "spf.protection.outlook.com"
        ),
        EmailServerPreset(id: "mailgun-us", label: "Mailgun (US)", host: "smtp.mailgun.org", port: 587, security: .starttls, spfInclude: "mailgun.org"),
        EmailServerPreset(id: "mailgun-eu", label: "Mailgun (EU)", host: "smtp.eu.mailgun.org", port: 587, security: .starttls, spfInclude: "eu.mailgun.org"),
        EmailServerPreset(id: "sendgrid", label: "SendGrid", host: "smtp.sendgrid.net", port: 587, security: .starttls, spfInclude: "sendgrid.net"),
        EmailServerPreset(id: "postmark", label: "Postmark", host: "smtp.postmarkapp.com", port: 587, security: .starttls, spfInclude: "spf.mtasv.net"),
        EmailServerPreset(id: "brevo", label: "Brevo", host: "smtp-relay.brevo.com", port: 587, security: .starttls, spfInclude: "spf.brevo.com"),
        EmailServerPreset(id: "zoho", label: "Zoho Mail", host: "smtp.zoho.com", port: 465, security: .tls, spfInclude: "zoho.com"),
        EmailServerPreset(id: "fastmail", label: "Fastmail", host: "smtp.fastmail.com", port: 465, security: .tls, spfInclude: "spf.messagingengine.com"),
    ]

    public static func named(_ id: String) -> EmailServerPreset? {
        all.first { $0.id == id }
    }
}
