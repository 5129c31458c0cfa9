import Foundation
import TidingsCrypto
import TidingsDomain
import TidingsMail
import TidingsStorage

/// Sending domains: each gets an RSA-2048 and an Ed25519 DKIM key, whose private halves are
/// sealed and never leave Tidings; the API gives out the DNS records to publish.
public struct DomainService: Sendable {
    let env: ServiceEnvironment

    public init(_ env: ServiceEnvironment) {
        self.env = env
    }

    static let notFound = DomainError.notFound("domain_not_found", "No sending domain with this name exists in this workspace.")

    /// `{domain}`: makes the keys and answers with the records to publish.
    public func create(workspaceId: String, body: [String: JSONValue], by actor: AuditActor) async throws -> SendingDomain {
        var reader = BodyReader(body)
        let domain = try SendingDomain.validate(try reader.string("domain", required: true)!)
        try reader.rejectUnknownFields()
        let now = env.now()
        let selector = "tdg" + SecretHasher.hex((0..<4).map { _ in UInt8.random(in: 0...255) })
        let keys = [
            try DKIMKey.generateRSA(domain: domain, selector: selector + "r"),
            DKIMKey.generateEd25519(domain: domain, selector: selector + "e"),
        ]
        let stored = keys.map {
            SendingDomainRepository.StoredKey(id: Identifier.make("dk", at: now), algorithm: $0.algorithm.rawValue, selector: $0.selector, privateKey: $0.privateKey)
        }
        let id = Identifier.make("dom", at: now)
        let vault = try await env.keyring.vault(for: workspaceId)
        let audit = try await env.auditRecorder()
        try await env.database.transaction { db in
            guard try await SendingDomainRepository(db, vault: vault).insert(id: id, domain: domain, keys: stored, at: now) else {
                throw DomainError(.conflict, code: "domain_exists", message: "This workspace already has this sending domain.", field: "domain")
            }
            try await audit.record(
                AuditChange("domain.created", target: ("domain", id), summary: [
                    "domain": .string(domain), "selectors": .array(keys.map { .string($0.selector) }),
                ]),
                in: workspaceId, by: actor, db: db
            )
        }
        return SendingDomain(id: id, workspaceId: workspaceId, domain: domain, createdAt: now, records: Self.records(domain, keys: keys))
    }

    public func list(workspaceId: String) async throws -> [SendingDomain] {
        let vault = try await env.keyring.vault(for: workspaceId)
        return try await env.database.read { db in
            let repository = SendingDomainRepository(db, vault: vault)
            var domains: [SendingDomain] = []
            for row in try await repository.list() {
                domains.append(try await Self.domain(row, workspaceId: workspaceId, repository: repository))
            }
            return domains
        }
    }

    public func get(workspaceId: String, domain raw: String) async throws -> SendingDomain {
        let domain = try Self.name(raw)
        let vault = try await env.keyring.vault(for: workspaceId)
        return try await env.database.read { db in
            let repository = SendingDomainRepository(db, vault: vault)
            guard let row = try await repository.find(domain: domain) else { throw Self.notFound }
            return try await Self.domain(row, workspaceId: workspaceId, repository: repository)
        }
    }

    /// Deletes the domain and its keys: messages from it are no longer signed.
    public func delete(workspaceId: String, domain raw: String, by actor: AuditActor) async throws {
        let domain = try Self.name(raw)
        let vault = try await env.keyring.vault(for: workspaceId)
        let audit = try await env.auditRecorder()
        try await env.database.transaction { db in
            let repository = SendingDomainRepository(db, vault: vault)
            guard let row = try await repository.find(domain: domain), try await repository.delete(domain: domain) else { throw Self.notFound }
            try await audit.record(
                AuditChange("domain.deleted", target: ("domain", row.id), summary: ["domain": .string(domain)]), in: workspaceId, by: actor, db: db
            )
        }
    }

    /// The keys that sign messages from `domain`, if the workspace has it.
    public func signingKeys(workspaceId: String, domain: String) async throws -> [DKIMKey] {
        let vault = try await env.keyring.vault(for: workspaceId)
        return try await env.database.read { db in
            let repository = SendingDomainRepository(db, vault: vault)
            guard let row = try await repository.find(domain: domain) else { return [] }
            return try Self.keys(try await repository.keys(domainId: row.id), domain: domain)
        }
    }

    /// A name in the path that is not a domain cannot name one of the workspace's: 404.
    static func name(_ raw: String) throws -> String {
        guard let domain = try? SendingDomain.validate(raw) else { throw notFound }
        return domain
    }

    static func domain(_ row: SendingDomainRepository.Row, workspaceId: String, repository: SendingDomainRepository) async throws -> SendingDomain {
        let keys = try keys(try await repository.keys(domainId: row.id), domain: row.domain)
        return SendingDomain(id: row.id, workspaceId: workspaceId, domain: row.domain, createdAt: row.createdAt, records: records(row.domain, keys: keys))
    }

    /// The domain's keys, RSA first (the order the records are given out in).
    static func keys(_ stored: [SendingDomainRepository.StoredKey], domain: String) throws -> [DKIMKey] {
        try stored.sorted { ($0.algorithm != DKIMKey.Algorithm.rsaSHA256.rawValue ? 1 : 0, $0.id) < ($1.algorithm != DKIMKey.Algorithm.rsaSHA256.rawValue ? 1 : 0, $1.id) }.map { key in
            guard let algorithm = DKIMKey.Algorithm(rawValue: key.algorithm) else { throw StorageError.corruptValue(column: "dkim_keys.algorithm") }
            return try DKIMKey(domain: domain, selector: key.selector, algorithm: algorithm, privateKey: key.privateKey)
        }
    }

    /// The DKIM records, and a recommended SPF and DMARC record.
    static func records(_ domain: String, keys: [DKIMKey]) -> [DNSRecord] {
        keys.map { key in
            DNSRecord(type: "TXT", name: key.dnsName, value: key.dnsRecord, purpose: key.algorithm == .rsaSHA256 ? "dkim" : "dkim-ed25519")
        } + [
            DNSRecord(
                type: "TXT", name: domain, value: "v=spf1 a mx ~all",
                purpose: "spf (recommended: add your email server's include, e.g. include:amazonses.com, before ~all)"
            ),
            DNSRecord(type: "TXT", name: "_dmarc.\(domain)", value: "v=DMARC1; p=none; rua=mailto:dmarc-reports@\(domain); adkim=r; aspf=r", purpose: "dmarc"),
        ]
    }
}
