import Foundation
import SQLKit
import TidingsCrypto
import TidingsDomain
import TidingsStorage

/// Open and click tracking: the workspace's settings, the public pixel and redirect
/// requests, and what a message's detail shows.
///
/// The pixel and link URLs are public (mail clients and browsers call them without a
/// key); what protects them is the MAC in their token (`TrackingTokens`). A token that
/// does not verify, names no message, or points past the message's links is not found,
/// whatever else it says — there is no way to make Tidings redirect elsewhere.
public struct TrackingService: Sendable {
    let env: ServiceEnvironment
    /// Requests arriving together share a transaction (see `GroupCommitter`).
    private let committer: GroupCommitter<PendingEvent, Void>

    public init(_ env: ServiceEnvironment) {
        self.env = env
        self.committer = GroupCommitter(maxBatch: 64) { [env] pending in
            try await TenantScope.with(.instance) {
                try await env.database.transaction { db in
                    let byWorkspace = Dictionary(grouping: pending, by: \.vault.scope)
                    for workspaceId in byWorkspace.keys.sorted() {
                        let group = byWorkspace[workspaceId]!
                        try await db.enter(.workspace(workspaceId))
                        try await TrackingRepository(db, vault: group[0].vault).record(group.map(\.event))
                        try await WebhookOutbox.emit(
                            group.compactMap(Self.webhookEvent), workspaceId: workspaceId, vault: group[0].vault, db: db, now: env.now()
                        )
                    }
                    try await db.enter(TenantScope.current)
                }
            }
            return pending.map { _ in () }
        }
    }

    struct PendingEvent: Sendable {
        var vault: Vault
        var event: TrackingRepository.Event
        var contactId: String
    }

    /// A person's open or click, as webhook endpoints hear of it (machine requests are not sent).
    static func webhookEvent(_ pending: PendingEvent) -> WebhookEvent? {
        guard pending.event.botReason == nil else { return nil }
        var data: [String: JSONValue] = ["messageId": .string(pending.event.messageId), "contactId": .string(pending.contactId)]
        if let position = pending.event.linkPosition { data["linkIndex"] = .number(Double(position)) }
        return WebhookEvent(pending.event.kind == .open ? .messageOpened : .messageClicked, data: data, at: pending.event.at)
    }

    // MARK: Settings

    public func settings(workspaceId: String) async throws -> TrackingSettings {
        let vault = try await env.keyring.vault(for: workspaceId)
        return try await env.database.read { db in try await TrackingRepository(db, vault: vault).settings() }
    }

    /// `PATCH /v1/settings/tracking`: the fields given change, the others stay. A change is audited.
    public func updateSettings(workspaceId: String, body: [String: JSONValue], by actor: AuditActor) async throws -> TrackingSettings {
        var reader = BodyReader(body)
        let opens = try reader.bool("opens")
        let clicks = try reader.bool("clicks")
        let transactional = try reader.bool("transactional")
        try reader.rejectUnknownFields()
        let vault = try await env.keyring.vault(for: workspaceId)
        let audit = try await env.auditRecorder()
        let now = env.now()
        return try await env.database.transaction { db in
            let repository = TrackingRepository(db, vault: vault)
            let before = try await repository.settings()
            var after = before
            after.opens = opens ?? before.opens
            after.clicks = clicks ?? before.clicks
            after.transactional = transactional ?? before.transactional
            var changed: [String: JSONValue] = [:]
            if after.opens != before.opens { changed["opens"] = .bool(after.opens) }
            if after.clicks != before.clicks { changed["clicks"] = .bool(after.clicks) }
            if after.transactional != before.transactional { changed["transactional"] = .bool(after.transactional) }
            guard !changed.isEmpty else { return before }
            try await repository.save(after, at: now)
            try await audit.record(AuditChange("tracking.settings_changed", target: ("workspace", workspaceId), summary: changed), in: workspaceId, by: actor, db: db)
            after.updatedAt = now
            return after
        }
    }

    /// A message's opens and clicks; `nil` before the first tracked request.
    public func engagement(workspaceId: String, messageId: String) async throws -> MessageEngagement? {
        let vault = try await env.keyring.vault(for: workspaceId)
        return try await env.database.read { db in try await TrackingRepository(db, vault: vault).engagement(messageId: messageId) }
    }

    // MARK: Tracked requests

    /// Who asked for a pixel or link: the truncated address and the user agent.
    public struct Client: Sendable {
        public var network: String?
        public var userAgent: String?

        public init(network: String?, userAgent: String?) {
            self.network = network
            self.userAgent = userAgent
        }
    }

    /// `GET /t/o/{token}`: records the open; `false` when the token is not a valid one.
    public func open(token text: String, client: Client) async throws -> Bool {
        guard let (token, mac) = TrackingToken.parse(text, kind: .open), let found = try await verify(token, mac: mac) else { return false }
        await record(token, found: found, client: client)
        return true
    }

    /// `GET /t/c/{token}`: records the click and returns the link's URL; `nil` when the token
    /// is not a valid one.
    public func click(token text: String, client: Client) async throws -> String? {
        guard let (token, mac) = TrackingToken.parse(text, kind: .click), let found = try await verify(token, mac: mac),
              let position = token.position else { return nil }
        let links = try await TenantScope.with(.workspace(found.target.workspaceId)) {
            try await env.database.read { db in try await TrackingRepository(db, vault: found.vault).links(messageIds: [token.messageId]) }
        }
        guard let urls = links[token.messageId], position < urls.count else { return nil }
        await record(token, found: found, client: client)
        return urls[position]
    }

    /// The message a token names and its workspace's keys, when the MAC is right.
    private func verify(_ token: TrackingToken, mac: String) async throws -> (target: TrackingRepository.TokenTarget, vault: Vault)? {
        // The token's workspace is known only from its message.
        guard let target = try await TenantScope.with(.instance, {
            try await env.database.read { db in try await TrackingRepository.target(messageId: token.messageId, db: db) }
        }) else { return nil }
        let vault: Vault
        do {
            vault = try await env.keyring.vault(for: target.workspaceId)
        } catch is WorkspaceKeysDestroyed {
            return nil
        }
        guard TrackingTokens(vault: vault).verify(token, mac: mac) else { return nil }
        return (target, vault)
    }

    /// Stores the request. A failure is logged, not passed on: the reader still gets the
    /// image or reaches the link.
    private func record(_ token: TrackingToken, found: (target: TrackingRepository.TokenTarget, vault: Vault), client: Client) async {
        let now = env.now()
        let since: TimeInterval? = switch found.target.status {
        case .delivered, .bounced: now.timeIntervalSince(found.target.updatedAt)
        // An inline gateway scanning the message while it is being handed over.
        case .sending: 0
        default: nil
        }
        let reason = TrackingBotPolicy.classify(userAgent: client.userAgent, network: client.network, secondsSinceDelivery: since)
        let event = TrackingRepository.Event(
            id: Identifier.make("te", at: now), messageId: token.messageId, contactPseudonym: found.vault.pseudonym(found.target.contactId),
            kind: token.kind, linkPosition: token.position, network: client.network,
            userAgent: client.userAgent.map { String($0.prefix(TrackingRepository.maxUserAgent)) }, botReason: reason?.rawValue, at: now
        )
        do {
            try await committer.submit(PendingEvent(vault: found.vault, event: event, contactId: found.target.contactId))
        } catch {
            env.logger.error("Recording a tracked request failed", metadata: [
                "message": "\(token.messageId)", "kind": "\(token.kind.rawValue)", "error_type": "\(type(of: error))",
            ])
        }
    }
}
