import Foundation
import TidingsCrypto
import TidingsDomain
import TidingsMail
import TidingsStorage

/// A workspace's SMTP servers. The first one is the default; passwords are write-only,
/// sealed at rest, and appear in no answer, log line or audit summary.
public struct EmailServerService: Sendable {
    let env: ServiceEnvironment
    /// The SMTP client's settings, for `test`.
    let delivery: DeliverySettings

    public init(_ env: ServiceEnvironment, delivery: DeliverySettings = DeliverySettings(clientName: "localhost")) {
        self.env = env
        self.delivery = delivery
    }

    /// What `POST /v1/email-servers/{id}/test` found.
    public struct TestResult: Sendable {
        public var ok: Bool
        public var steps: [SMTPStepRecord]
        /// The TLS negotiated, when the handshake completed (also when a pin did not match).
        public var tls: SMTPTLSInfo?
        /// How the server's key compared with the server's pins.
        public var pin: PinResult
    }

    public enum PinResult: String, Sendable {
        /// The server's key is one of the pins.
        case matched
        /// It is none of them: deliveries are deferred until the pins or the server change.
        case mismatched
        /// The server has no pins.
        case notConfigured = "not_configured"
        /// Pins are set, but no TLS handshake completed to compare them with.
        case notChecked = "not_checked"
    }

    /// Connects to the server as a delivery would: greeting, EHLO, TLS (with certificate
    /// checks), AUTH, then QUIT. Each step reports the server's reply or what went wrong;
    /// nothing is sent. The attempt is audited (never the password).
    public func test(workspaceId: String, id: String, by actor: AuditActor) async throws -> TestResult {
        let server = try await get(workspaceId: workspaceId, id: id)
        let security: SMTPSession.Security = switch server.security {
        case .tls: .implicitTLS
        case .starttls: .startTLS
        case .none: .none
        }
        let endpoint = SMTPEndpoint(
            host: server.host, port: server.port, security: security, username: server.username, password: server.password,
            clientName: delivery.clientName, tlsPins: server.tlsPins
        )
        let result: TestResult
        do {
            let connection = try await SMTPConnection.open(to: endpoint, tls: delivery.tls, timeouts: delivery.timeouts)
            var steps = connection.steps
            if let quit = await connection.close() { steps.append(quit) }
            result = TestResult(ok: true, steps: steps, tls: connection.tls, pin: Self.pinResult(server, connection.tls))
        } catch let error as SMTPConnectionError {
            result = TestResult(ok: false, steps: error.steps, tls: error.tls, pin: Self.pinResult(server, error.tls))
        }
        let audit = try await env.auditRecorder()
        try await env.database.transaction { db in
            try await audit.record(AuditChange("email_server.tested", target: ("email_server", server.id), summary: [
                "name": .string(server.name), "host": .string(server.host), "ok": .bool(result.ok), "pin": .string(result.pin.rawValue),
            ]), in: workspaceId, by: actor, db: db)
        }
        return result
    }

    static func pinResult(_ server: EmailServer, _ tls: SMTPTLSInfo?) -> PinResult {
        guard !server.tlsPins.isEmpty else { return .notConfigured }
        switch tls?.pinMatched {
        case true?: return .matched
        case false?: return .mismatched
        case nil: return .notChecked
        }
    }

    static let notFound = DomainError.notFound("email_server_not_found", "No email server with this id exists in this workspace.")

    public func create(workspaceId: String, body: [String: JSONValue], by actor: AuditActor) async throws -> EmailServer {
        var reader = BodyReader(body)
        let now = env.now()
        var server = EmailServer(
            id: Identifier.make("srv", at: now), workspaceId: workspaceId, name: "", host: "", port: 0, security: .starttls,
            username: nil, password: nil, maxConnections: EmailServer.defaultMaxConnections, rateLimit: nil, preset: nil,
            isDefault: false, createdAt: now, updatedAt: now
        )
        try Self.apply(&reader, body, to: &server, creating: true)
        try reader.rejectUnknownFields()
        let vault = try await env.keyring.vault(for: workspaceId)
        let audit = try await env.auditRecorder()
        let proposed = server
        return try await env.database.transaction { db in
            let repository = EmailServerRepository(db, vault: vault)
            var server = proposed
            if try await repository.list().isEmpty { server.isDefault = true }
            try await repository.insert(server)
            try await audit.record(Self.change("email_server.created", server, fields: Self.fields(in: body)), in: workspaceId, by: actor, db: db)
            return server
        }
    }

    public func list(workspaceId: String) async throws -> [EmailServer] {
        let vault = try await env.keyring.vault(for: workspaceId)
        return try await env.database.read { db in try await EmailServerRepository(db, vault: vault).list() }
    }

    public func get(workspaceId: String, id: String) async throws -> EmailServer {
        let vault = try await env.keyring.vault(for: workspaceId)
        guard let server = try await env.database.read({ db in try await EmailServerRepository(db, vault: vault).find(id: id) }) else {
            throw Self.notFound
        }
        return server
    }

    /// Changes the fields given; `username` or `password` set to null removes them. Making a
    /// server the default takes that from the previous one.
    public func update(workspaceId: String, id: String, body: [String: JSONValue], by actor: AuditActor) async throws -> EmailServer {
        let vault = try await env.keyring.vault(for: workspaceId)
        let audit = try await env.auditRecorder()
        let now = env.now()
        return try await env.database.transaction { db in
            let repository = EmailServerRepository(db, vault: vault)
            guard var server = try await repository.find(id: id) else { throw Self.notFound }
            let wasDefault = server.isDefault
            var reader = BodyReader(body)
            try Self.apply(&reader, body, to: &server, creating: false)
            try reader.rejectUnknownFields()
            if wasDefault, !server.isDefault {
                throw DomainError.invalid("default_required", "Make another server the default instead; a workspace keeps one.", field: "isDefault")
            }
            server.updatedAt = now
            try await repository.update(server)
            try await audit.record(Self.change("email_server.updated", server, fields: Self.fields(in: body)), in: workspaceId, by: actor, db: db)
            return server
        }
    }

    public func delete(workspaceId: String, id: String, by actor: AuditActor) async throws {
        let vault = try await env.keyring.vault(for: workspaceId)
        let audit = try await env.auditRecorder()
        try await env.database.transaction { db in
            let repository = EmailServerRepository(db, vault: vault)
            guard let server = try await repository.find(id: id), try await repository.delete(id: id) else { throw Self.notFound }
            try await repository.ensureDefault()
            try await audit.record(Self.change("email_server.deleted", server, fields: []), in: workspaceId, by: actor, db: db)
        }
    }

    /// Reads the body's fields into `server`. A preset fills host, port and security unless
    /// the body gives them too.
    static func apply(_ reader: inout BodyReader, _ body: [String: JSONValue], to server: inout EmailServer, creating: Bool) throws(DomainError) {
        if let name = try reader.string("name", required: creating) {
            server.name = try DisplayName.validate(name, field: "name", maxLength: EmailServer.maxNameLength)
        }
        if let presetId = try reader.string("preset") {
            guard let preset = EmailServerPreset.named(presetId) else {
                throw .invalid("unknown_preset", "Unknown preset '\(presetId.prefix(64))'; the README lists them.", field: "preset")
            }
            server.preset = preset.id
            server.host = preset.host
            server.port = preset.port
            server.security = preset.security
        } else if body["preset"] == .null {
            server.preset = nil
        }
        if let host = try reader.string("host") { server.host = try EmailServer.validateHost(host) }
        if let text = try reader.string("security") {
            guard let security = EmailServer.Security(rawValue: text) else {
                throw .invalid("invalid_security", "security must be tls, starttls or none.", field: "security")
            }
            server.security = security
            // Without a port or a preset, the usual port of the security chosen.
            if creating, body["port"] == nil, body["preset"] == nil {
                server.port = security == .tls ? 465 : security == .starttls ? 587 : 25
            }
        }
        if let port = try reader.number("port") {
            guard port == port.rounded(), (1...65535).contains(port) else {
                throw .invalid("invalid_port", "port must be a whole number from 1 to 65535.", field: "port")
            }
            server.port = Int(port)
        }
        if creating, server.host.isEmpty {
            throw .invalid("missing_field", "Give a host, or a preset that names one.", field: "host")
        }
        if creating, server.port == 0 { server.port = 587 }
        if server.security == .none, !EmailServer.isLoopback(server.host) {
            throw .invalid("insecure_server", "security 'none' is allowed for loopback hosts only; use tls or starttls.", field: "security")
        }
        if body["tlsPins"] != nil {
            server.tlsPins = try EmailServer.validatePins(try reader.stringArray("tlsPins") ?? [])
        }
        if server.security == .none, !server.tlsPins.isEmpty {
            throw .invalid("pins_without_tls", "Pins are checked in the TLS handshake; with security 'none' there is none. Use tls or starttls, or remove the pins.", field: "tlsPins")
        }
        if body["username"] != nil { server.username = try reader.string("username").map { $0.isEmpty ? nil : $0 } ?? nil }
        if body["password"] != nil { server.password = try reader.string("password").map { $0.isEmpty ? nil : $0 } ?? nil }
        for (field, value) in [("username", server.username), ("password", server.password)] {
            if let value, value.utf8.count > 1024 || value.unicodeScalars.contains(where: { $0 == "\r" || $0 == "\n" || $0 == "\0" }) {
                throw .invalid("invalid_credentials", "\(field) must be at most 1024 bytes without line breaks.", field: field)
            }
        }
        if server.password != nil, server.username == nil {
            throw .invalid("invalid_credentials", "A password needs a username.", field: "username")
        }
        if let connections = try reader.number("maxConnections") {
            guard connections == connections.rounded(), (1...Double(EmailServer.maxConnectionsLimit)).contains(connections) else {
                throw .invalid("invalid_max_connections", "maxConnections must be a whole number from 1 to \(EmailServer.maxConnectionsLimit).", field: "maxConnections")
            }
            server.maxConnections = Int(connections)
        }
        if body["rateLimit"] != nil {
            if let rate = try reader.number("rateLimit") {
                guard rate > 0, rate <= 10000 else {
                    throw .invalid("invalid_rate_limit", "rateLimit must be more than 0 and at most 10000 messages per second.", field: "rateLimit")
                }
                server.rateLimit = rate
            } else {
                server.rateLimit = nil
            }
        }
        if let isDefault = try reader.bool("isDefault") { server.isDefault = isDefault }
    }

    /// The names of the fields a body set (never their values: a password stays out of the log).
    static func fields(in body: [String: JSONValue]) -> [JSONValue] {
        body.keys.sorted().map(JSONValue.string)
    }

    static func change(_ action: String, _ server: EmailServer, fields: [JSONValue]) -> AuditChange {
        AuditChange(action, target: ("email_server", server.id), summary: [
            "name": .string(server.name), "host": .string(server.host), "fields": .array(fields),
        ])
    }
}
