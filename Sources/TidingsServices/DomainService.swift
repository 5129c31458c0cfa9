import Foundation
import TidingsCrypto
import TidingsDNS
import TidingsDomain
import TidingsMail
import TidingsStorage

/// Sending domains: each gets an RSA-2048 and an Ed25519 DKIM key, whose private halves are
/// sealed and never leave Tidings; the API gives out the DNS records to publish, and checks
/// what the domain's owner published (now on request, and daily).
public struct DomainService: Sendable {
    let env: ServiceEnvironment
    /// Asks DNS about the domains' records; `nil`: the system's resolvers, as configured in resolv.conf.
    let checker: DomainChecker?

    public init(_ env: ServiceEnvironment, checker: DomainChecker? = nil) {
        self.env = env
        self.checker = checker
    }

    /// How long after a check the daily run checks a domain again.
    public static let checkInterval: TimeInterval = 24 * 3600

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

    /// Every domain, each with the outcome of its latest check (not the checks themselves).
    public func list(workspaceId: String) async throws -> [SendingDomain] {
        let vault = try await env.keyring.vault(for: workspaceId)
        return try await env.database.read { db in
            let repository = SendingDomainRepository(db, vault: vault)
            let summaries = try await DomainCheckRepository(db, vault: vault).summaries()
            var domains: [SendingDomain] = []
            for row in try await repository.list() {
                var domain = try await Self.domain(row, workspaceId: workspaceId, repository: repository)
                domain.verification = summaries[row.id]
                domains.append(domain)
            }
            return domains
        }
    }

    /// The domain with its latest checks.
    public func get(workspaceId: String, domain raw: String) async throws -> SendingDomain {
        let domain = try Self.name(raw)
        let vault = try await env.keyring.vault(for: workspaceId)
        return try await env.database.read { db in
            let repository = SendingDomainRepository(db, vault: vault)
            guard let row = try await repository.find(domain: domain) else { throw Self.notFound }
            var found = try await Self.domain(row, workspaceId: workspaceId, repository: repository)
            found.verification = try await DomainCheckRepository(db, vault: vault).latest(domainId: row.id)
            return found
        }
    }

    // MARK: Checks

    /// Checks the domain's DKIM, SPF and DMARC records now, against its keys and the
    /// workspace's email servers, and stores what was found. A check whose status changed is
    /// audited (one event per run, listing the changes).
    public func verify(workspaceId: String, domain raw: String, by actor: AuditActor) async throws -> SendingDomain {
        let domain = try Self.name(raw)
        let vault = try await env.keyring.vault(for: workspaceId)
        let (row, keys, servers) = try await env.database.read { db in
            let repository = SendingDomainRepository(db, vault: vault)
            guard let row = try await repository.find(domain: domain) else { throw Self.notFound }
            let keys = try Self.keys(try await repository.keys(domainId: row.id), domain: domain)
            let servers = try await EmailServerRepository(db, vault: vault).list()
            return (row, keys, servers)
        }
        let records = Self.records(domain, keys: keys)
        let checks = await (checker ?? Self.systemChecker()).check(
            domain: domain, keys: keys,
            servers: servers.map { DomainChecker.Server(name: $0.name, host: $0.host, spfInclude: $0.preset.flatMap(EmailServerPreset.named)?.spfInclude) },
            recommendedDMARC: records.first { $0.purpose == "dmarc" }?.value ?? "v=DMARC1; p=none"
        )
        let now = env.now()
        let verification = DomainVerification(checkedAt: now, checks: checks)
        let audit = try await env.auditRecorder()
        let changed = try await env.database.transaction { db in
            // The domain may have been deleted (or deleted and added again) while DNS was asked.
            guard try await SendingDomainRepository(db, vault: vault).find(domain: domain)?.id == row.id else { throw Self.notFound }
            let previous = try await DomainCheckRepository(db, vault: vault).replace(
                domainId: row.id, with: checks, at: now, nextCheckAt: now.addingTimeInterval(Self.checkInterval)
            )
            let changes = checks.filter { previous[$0.key] != $0.status }
            if !changes.isEmpty {
                try await audit.record(
                    AuditChange("domain.checks_changed", target: ("domain", row.id), summary: [
                        "domain": .string(domain), "status": .string(verification.status.rawValue),
                        "changes": .array(changes.map { check in
                            .object([
                                "check": .string(check.key), "from": .string(previous[check.key]?.rawValue ?? "unchecked"),
                                "to": .string(check.status.rawValue),
                            ])
                        }),
                    ]),
                    in: workspaceId, by: actor, db: db
                )
            }
            return changes.count
        }
        // Domains are not personal data; what the records hold (report addresses, server
        // addresses) stays out of the log.
        env.logger.info("Domain checked", metadata: [
            "workspace": .string(workspaceId), "domain": .string(domain), "status": .string(verification.status.rawValue),
            "checks": .string(checks.map { "\($0.key)=\($0.status.rawValue)" }.joined(separator: ",")), "changed": .stringConvertible(changed),
        ])
        return SendingDomain(id: row.id, workspaceId: workspaceId, domain: domain, createdAt: row.createdAt, records: records, verification: verification)
    }

    /// The daily run: checks every domain, of every workspace, not checked for a day (or
    /// never), each in its own workspace's scope. A domain another instance has claimed is
    /// left to it. Returns how many domains were checked.
    @discardableResult
    public func verifyDue(limit: Int = 200) async throws -> Int {
        let now = env.now()
        let due = try await TenantScope.with(.instance) {
            try await env.database.read { db in try await DomainCheckRepository.due(at: now, limit: limit, in: db) }
        }
        var checked = 0
        for item in due {
            let claimed = try await TenantScope.with(.instance) {
                try await env.database.transaction { db in
                    try await DomainCheckRepository.claim(item, at: now, next: now.addingTimeInterval(Self.checkInterval), in: db)
                }
            }
            guard claimed else { continue }
            do {
                _ = try await TenantScope.with(.workspace(item.workspaceId)) {
                    try await verify(workspaceId: item.workspaceId, domain: item.domain, by: .system("domain-checks"))
                }
                checked += 1
            } catch {
                // One domain's failure (its workspace deleted meanwhile, say) does not stop the others.
                env.logger.warning("Domain check failed", metadata: [
                    "workspace": .string(item.workspaceId), "domain": .string(item.domain), "error_type": .string("\(type(of: error))"),
                ])
            }
        }
        return checked
    }

    /// A checker that asks the nameservers of /etc/resolv.conf.
    static func systemChecker() -> DomainChecker {
        let servers = DNSServerAddress.system(resolvConf: try? String(contentsOfFile: "/etc/resolv.conf", encoding: .utf8))
        return DomainChecker(lookup: DNSResolver(servers: servers), helo: "localhost")
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
