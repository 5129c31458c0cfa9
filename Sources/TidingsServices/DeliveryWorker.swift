import Foundation
import SQLKit
import Synchronization
import TidingsCrypto
import TidingsDomain
import TidingsMail
import TidingsStorage

/// How messages are delivered: the SMTP client's settings and the queue's timing.
public struct DeliverySettings: Sendable {
    /// The name given in EHLO.
    public var clientName: String
    public var tls: SMTPTLSSettings
    public var timeouts: SMTPTimeouts
    /// Messages being delivered at once by this process.
    public var concurrency: Int
    /// How long a claimed job stays leased without a heartbeat; a dead worker's jobs are
    /// claimed again after it.
    public var lease: TimeInterval
    /// How often other instances' work (and scheduled messages) is looked for.
    public var pollInterval: Duration
    /// The first retry waits this long, each further one twice as long …
    public var retryMin: TimeInterval
    /// … up to this.
    public var retryMax: TimeInterval
    /// A message not delivered this long after it was accepted has failed.
    public var giveUpAfter: TimeInterval
    /// The base URL of links in messages: the preference page of `{{ unsubscribe_link }}` and
    /// the one-click target of `List-Unsubscribe`, tracked links and the open pixel (the configuration's
    /// `publicURL`).
    public var publicURL: String

    public init(
        clientName: String, tls: SMTPTLSSettings = SMTPTLSSettings(), timeouts: SMTPTimeouts = SMTPTimeouts(), concurrency: Int = 64,
        lease: TimeInterval = 60, pollInterval: Duration = .seconds(1), retryMin: TimeInterval = 60, retryMax: TimeInterval = 4 * 3600,
        giveUpAfter: TimeInterval = 72 * 3600, publicURL: String = "https://localhost:8443"
    ) {
        self.publicURL = publicURL
        self.clientName = clientName
        self.tls = tls
        self.timeouts = timeouts
        self.concurrency = concurrency
        self.lease = lease
        self.pollInterval = pollInterval
        self.retryMin = retryMin
        self.retryMax = retryMax
        self.giveUpAfter = giveUpAfter
    }

    /// The wait before attempt `attempt + 1`: doubling from `retryMin`, capped at `retryMax`,
    /// with ±20 % jitter so deferred messages do not return in lockstep.
    public func backoff(afterAttempt attempt: Int, jitter: Double = Double.random(in: 0.8...1.2)) -> TimeInterval {
        let base = min(retryMax, retryMin * pow(2, Double(max(0, attempt - 1))))
        return min(retryMax, base * jitter)
    }
}

/// Claims message jobs from the durable queue and delivers them: render the template version
/// the message was accepted with, build MIME, sign with DKIM, send through the workspace's
/// SMTP server, and record the outcome in the message's timeline.
public final class DeliveryWorker: Sendable {
    let env: ServiceEnvironment
    let settings: DeliverySettings
    let signal: JobSignal
    /// This process's name on the leases it holds.
    let owner = Identifier.make("worker")
    private let pools = Mutex<[String: (version: Date, pool: SMTPPool)]>([:])
    private let templates = Mutex<[String: CompiledTemplate]>([:])
    /// Signing keys by workspace and domain, re-read after `keysLifetime` (a new or deleted
    /// domain takes effect within it).
    private let signingKeys = Mutex<[String: (loaded: ContinuousClock.Instant, keys: [DKIMKey])]>([:])
    static let keysLifetime: Duration = .seconds(60)
    private let inFlight = Mutex<Set<String>>([])
    private let stopping = Atomic<Bool>(false)
    private let slotFreed = JobSignal()

    public init(_ env: ServiceEnvironment, settings: DeliverySettings, signal: JobSignal) {
        self.env = env
        self.settings = settings
        self.signal = signal
        self.completions = GroupCommitter(maxBatch: 64) { [env] items in try await Self.record(items, env: env) }
        self.linkWrites = GroupCommitter(maxBatch: 64) { [env] lists in try await Self.saveLinks(lists, env: env) }
    }

    static let kinds = [MessageService.jobKind]

    /// What one attempt changes, waiting for a shared transaction.
    struct Completion: Sendable {
        var job: Job
        var message: Message
        var events: [MessageEvent]
        var nextRun: Date?
        var suppression: (reply: String, code: String)?
        var vault: Vault
        /// What webhook endpoints are told about the attempt.
        var webhook: WebhookEvent?
    }

    /// Attempts that end together are recorded in one transaction (group commit).
    private let completions: GroupCommitter<Completion, Void>

    /// A tracked message's link list, stored before the message is sent (a click may come
    /// the moment it arrives).
    struct LinkList: Sendable {
        var vault: Vault
        var messageId: String
        var urls: [String]
    }

    private let linkWrites: GroupCommitter<LinkList, Void>

    static func saveLinks(_ lists: [LinkList], env: ServiceEnvironment) async throws -> [Void] {
        let now = env.now()
        try await TenantScope.with(.instance) {
            try await env.database.transaction { db in
                let byWorkspace = Dictionary(grouping: lists, by: \.vault.scope)
                for workspaceId in byWorkspace.keys.sorted() {
                    let group = byWorkspace[workspaceId]!
                    try await db.enter(.workspace(workspaceId))
                    try await TrackingRepository(db, vault: group[0].vault).saveLinks(group.map { ($0.messageId, $0.urls) }, at: now)
                }
                try await db.enter(TenantScope.current)
            }
        }
        return lists.map { _ in () }
    }

    /// Writes finished attempts: message, timeline, job (done or rescheduled), suppression, audit.
    static func record(_ items: [Completion], env: ServiceEnvironment) async throws -> [Void] {
        let audit = try await env.auditRecorder()
        let now = env.now()
        // Items grouped by workspace: one statement each for the messages, the timelines and the
        // finished jobs of a workspace.
        let byWorkspace = Dictionary(grouping: items, by: \.message.workspaceId)
        try await env.database.transaction { db in
            var records: [(stream: String, actor: AuditActor, change: AuditChange)] = []
            for workspaceId in byWorkspace.keys.sorted() {
                let group = byWorkspace[workspaceId]!
                let vault = group[0].vault
                try await db.enter(.workspace(workspaceId))
                let messages = MessageRepository(db, vault: vault)
                let jobs = JobRepository(db)
                try await messages.update(group.map(\.message))
                for item in group {
                    if let nextRun = item.nextRun { try await jobs.reschedule(id: item.job.id, runAt: nextRun) }
                }
                try await messages.addEvents(group.flatMap { item in item.events.map { (item.message.id, $0) } })
                try await jobs.complete(ids: group.filter { $0.nextRun == nil }.map(\.job.id))
                try await WebhookOutbox.emit(group.compactMap(\.webhook), workspaceId: workspaceId, vault: vault, db: db, now: now)
                for item in group {
                    let final = item.message
                    if let suppression = item.suppression {
                        try await SuppressionRepository(db, vault: vault).add(contactId: final.contactId, reason: "bounced", reply: suppression.reply, messageId: final.id, at: now)
                        try await ContactRepository(db, vault: vault).setStatus(contactId: final.contactId, .bounced, at: now)
                        records.append((workspaceId, .system("delivery"), AuditChange("contact.bounced", target: ("contact", final.contactId), summary: [
                            "email": .string(vault.pseudonym(final.request.rcpt)), "code": .string(suppression.code), "message": .string(final.id),
                        ])))
                    }
                    if final.status == .cancelled {
                        // Only the worker's own cancellations reach here: the contact unsubscribed after it was queued.
                        records.append((workspaceId, .system("delivery"), AuditChange("message.cancelled", target: ("message", final.id), summary: [
                            "email": .string(vault.pseudonym(final.request.rcpt)), "reason": .string("unsubscribed"),
                        ])))
                    }
                    if final.status == .failed || final.status == .bounced {
                        records.append((workspaceId, .system("delivery"), AuditChange("message.\(final.status.rawValue)", target: ("message", final.id), summary: [
                            "email": .string(vault.pseudonym(final.request.rcpt)), "attempts": .number(Double(final.attempts)),
                        ])))
                    }
                }
            }
            try await audit.record(records, db: db)
            try await db.enter(TenantScope.current)
        }
        return items.map { _ in () }
    }

    // MARK: Running

    /// Delivers until `stop()`; then finishes the deliveries in progress (their SMTP
    /// transactions complete) and closes the connections.
    public func run() async {
        await withDiscardingTaskGroup { group in
            group.addTask { [self] in await heartbeat() }
            while !stopping.load(ordering: .relaxed) {
                let free = settings.concurrency - inFlight.withLock { $0.count }
                guard free > 0 else {
                    // Every slot busy: wait until a delivery finishes.
                    await slotFreed.wait(timeout: settings.pollInterval)
                    continue
                }
                var jobs: [Job] = []
                do {
                    jobs = try await claim(limit: free)
                } catch {
                    env.logger.error("Claiming delivery jobs failed", metadata: ["error": "\(error)"])
                }
                for batch in Self.byWorkspace(jobs) {
                    group.addTask { [self] in await process(batch) }
                }
                if jobs.isEmpty {
                    // Nothing due: wait for new work, or poll for other instances' and scheduled work.
                    await signal.wait(timeout: settings.pollInterval)
                }
            }
            // Graceful stop: the discarding group waits for every delivery in progress to finish.
        }
        await shutdownPools()
    }

    /// Asks `run()` to stop claiming and return once in-flight deliveries are done.
    public func stop() {
        stopping.store(true, ordering: .relaxed)
        // A message waiting for a rate-limit slot is deferred, not waited for.
        for pool in pools.withLock({ $0.values.map(\.pool) }) { pool.stopPacing() }
        signal.wake()
    }

    /// Delivers every job due now, one batch after another, until none is left; returns how
    /// many were processed. For tests and one-off runs (`run()` is the service loop).
    @discardableResult
    public func drain() async throws -> Int {
        var processed = 0
        while true {
            let jobs = try await claim(limit: settings.concurrency)
            if jobs.isEmpty { return processed }
            await withTaskGroup(of: Void.self) { group in
                for batch in Self.byWorkspace(jobs) { group.addTask { [self] in await process(batch) } }
            }
            processed += jobs.count
        }
    }

    public func shutdownPools() async {
        let all = pools.withLock { pools in
            defer { pools = [:] }
            return pools.values.map(\.pool)
        }
        for pool in all { await pool.shutdown() }
    }

    private func claim(limit: Int) async throws -> [Job] {
        let now = env.now()
        // Claiming and starting the attempts is one transaction.
        let jobs = try await TenantScope.with(.instance) {
            try await env.database.transaction { [owner, settings] db in
                let queue = JobRepository(db)
                var jobs = try await queue.claim(kinds: Self.kinds, owner: owner, now: now, leaseUntil: now.addingTimeInterval(settings.lease), limit: limit)
                // Slots that other mail leaves free take announcement messages, handed out as
                // they are needed: mail queued after a large announcement does not wait behind it.
                if jobs.count < limit,
                   try await AnnouncementRepository.handOut(
                       limit: limit - jobs.count, kind: MessageService.jobKind, owner: owner, now: now, lease: settings.lease, db: db
                   ) > 0 {
                    jobs += try await queue.claim(
                        kinds: Self.kinds, owner: owner, now: now, leaseUntil: now.addingTimeInterval(settings.lease), limit: limit - jobs.count
                    )
                }
                _ = try await MessageRepository.markSending(jobs.map { ($0.subjectId, $0.workspaceId) }, at: now, db: db)
                return jobs
            }
        }
        inFlight.withLock { $0.formUnion(jobs.map(\.id)) }
        return jobs
    }

    /// Extends the leases of the jobs in progress a third of the lease time before they run out.
    private func heartbeat() async {
        var last = ContinuousClock.now
        while !stopping.load(ordering: .relaxed) || !inFlight.withLock({ $0.isEmpty }) {
            try? await Task.sleep(for: .milliseconds(200))
            guard ContinuousClock.now - last >= .seconds(settings.lease / 3) else { continue }
            last = ContinuousClock.now
            let ids = Array(inFlight.withLock { $0 })
            guard !ids.isEmpty else { continue }
            let until = env.now().addingTimeInterval(settings.lease)
            do {
                try await TenantScope.with(.instance) {
                    try await env.database.transaction { [owner] db in try await JobRepository(db).extendLeases(ids: ids, owner: owner, until: until) }
                }
            } catch {
                env.logger.error("Extending delivery leases failed", metadata: ["error": "\(error)"])
            }
        }
    }

    // MARK: One message

    /// Claimed jobs grouped by workspace, in the order claimed.
    static func byWorkspace(_ jobs: [Job]) -> [[Job]] {
        var order: [String] = []
        var groups: [String: [Job]] = [:]
        for job in jobs {
            if groups[job.workspaceId] == nil { order.append(job.workspaceId) }
            groups[job.workspaceId, default: []].append(job)
        }
        return order.map { groups[$0]! }
    }

    /// Claimed jobs of one workspace: their messages, servers and templates are read together,
    /// then each message is sent on its own. If that read fails, each job reads for itself.
    private func process(_ jobs: [Job]) async {
        let preparations: [String: Preparation]
        do {
            preparations = try await TenantScope.with(.workspace(jobs[0].workspaceId)) {
                let vault = try await env.keyring.vault(for: jobs[0].workspaceId)
                return try await prepare(jobs, vault: vault)
            }
        } catch {
            preparations = [:]
        }
        await withDiscardingTaskGroup { group in
            for job in jobs {
                group.addTask { [self] in
                    await process(job, preparation: preparations[job.id])
                    slotFreed.wake()
                }
            }
        }
    }

    private func process(_ job: Job, preparation: Preparation?) async {
        defer { _ = inFlight.withLock { $0.remove(job.id) } }
        do {
            try await TenantScope.with(.workspace(job.workspaceId)) {
                try await deliver(job, preparation: preparation)
            }
        } catch {
            // Our own fault (database, keys): try again later rather than lose the message.
            env.logger.error("Delivering a message failed; it will be retried", metadata: ["message": "\(job.subjectId)", "error": "\(error)"])
            let retry = env.now().addingTimeInterval(settings.backoff(afterAttempt: job.attempts))
            try? await TenantScope.with(.instance) {
                try await env.database.transaction { db in try await JobRepository(db).reschedule(id: job.id, runAt: retry) }
            }
        }
    }

    /// Everything needed to send, gathered in one read.
    private struct Prepared: Sendable {
        var message: Message
        var server: EmailServer
        var content: CompiledTemplate
        var contact: Contact?
        /// Whether it gets an open pixel and tracked links …
        var tracking = TrackingDecision(opens: false, clicks: false)
        /// … and the links an earlier attempt stored.
        var links: [String] = []
    }

    private enum Preparation: Sendable {
        case ready(Prepared)
        /// Nothing to do (already final, or gone).
        case skip
        case fail(Message, String)
        /// Not to be sent any more (a marketing message to a contact who unsubscribed since it was queued).
        case cancel(Message, String)
    }

    private func deliver(_ job: Job, preparation ready: Preparation?) async throws {
        let workspaceId = job.workspaceId
        let vault: Vault
        do {
            vault = try await env.keyring.vault(for: workspaceId)
        } catch is WorkspaceKeysDestroyed {
            // The workspace was deleted: its rows (this job's included) are going or gone.
            return try await complete(job)
        }
        let preparation: Preparation
        if let ready {
            preparation = ready
        } else {
            preparation = try await prepare([job], vault: vault)[job.id] ?? .skip
        }
        let prepared: Prepared
        switch preparation {
        case .skip:
            return try await complete(job)
        case .fail(let message, let reason):
            return try await finish(job, message, vault: vault, outcome: .failed(reason))
        case .cancel(let message, let reason):
            return try await finish(job, message, vault: vault, outcome: .cancelled(reason))
        case .ready(let ready):
            prepared = ready
        }
        // The claim already made it `sending` and counted the attempt.
        var message = prepared.message
        let now = env.now()
        message.emailServerId = prepared.server.id

        let bytes: [UInt8]
        do {
            bytes = try await build(prepared, message: message, vault: vault, now: now)
        } catch let error as DomainError {
            return try await finish(job, message, vault: vault, outcome: .failed("The message could not be built: \(error.message)"))
        }
        let recipients = message.request.recipients.filter { !message.request.settled.contains($0) }
        let sender = try CompiledTemplate.senderAddress(prepared.content)
        let envelope = SMTPSession.Envelope(
            sender: sender, recipients: recipients, message: bytes,
            eightBit: bytes.contains { $0 >= 0x80 },
            // An internationalised address (RFC 6531) needs a server that offers SMTPUTF8.
            smtpUTF8: !sender.utf8.allSatisfy { $0 < 0x80 } || recipients.contains { !$0.utf8.allSatisfy { $0 < 0x80 } }
        )
        let delivery = await pool(for: prepared.server).deliver(envelope)
        try await finish(job, message, vault: vault, outcome: .attempted(delivery))
    }

    /// Reads what the jobs of one workspace need, in one read: their messages, the workspace's
    /// servers, templates not compiled yet, and contacts for templates that use them.
    private func prepare(_ jobs: [Job], vault: Vault) async throws -> [String: Preparation] {
        let cached = templates.withLock { $0 }
        return try await env.database.read { db in
            var compiled = cached
            let found = try await MessageRepository(db, vault: vault).find(ids: jobs.map(\.subjectId))
            let messages = Dictionary(found.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
            let servers = try await EmailServerRepository(db, vault: vault).list()
            let fallback = servers.first(where: { $0.isDefault }) ?? servers.first
            let templates = TemplateRepository(db, vault: vault)
            let contacts = ContactRepository(db, vault: vault)
            let unsubscribed = try await Self.unsubscribed(Array(messages.values), workspaceId: vault.scope, db: db)
            let tracking = TrackingRepository(db, vault: vault)
            let trackingSettings = try await tracking.settings()
            // Only a retry can find links stored already.
            let retried = found.filter { $0.attempts > 1 }.map(\.id)
            let storedLinks = retried.isEmpty ? [:] : try await tracking.links(messageIds: retried)
            var preparations: [String: Preparation] = [:]
            for job in jobs {
                guard let message = messages[job.subjectId], !message.status.isFinal else {
                    // Gone, or already final: nothing to do.
                    preparations[job.id] = .skip
                    continue
                }
                if unsubscribed.contains(message.id) {
                    preparations[job.id] = .cancel(message, "unsubscribed")
                    continue
                }
                // A deleted server: the workspace's default now.
                guard let server = servers.first(where: { $0.id == message.emailServerId }) ?? fallback else {
                    preparations[job.id] = .fail(message, "The workspace has no email server.")
                    continue
                }
                let key = "\(message.templateId)#\(message.templateVersion)"
                if compiled[key] == nil {
                    guard let template = try await templates.find(slug: message.templateSlug, version: message.templateVersion),
                          template.id == message.templateId else {
                        preparations[job.id] = .fail(message, "The template '\(message.templateSlug)' (version \(message.templateVersion)) was deleted.")
                        continue
                    }
                    compiled[key] = try TemplateService.compile(template.content)
                }
                let content = compiled[key]!
                // The contact's attributes are read only for templates that use them.
                let usesContact = content.variables.contains { $0 == "contact" || $0.hasPrefix("contact.") }
                let contact = usesContact ? try await contacts.find(email: try EmailAddress(message.request.rcpt)) : nil
                preparations[job.id] = .ready(Prepared(
                    message: message, server: server, content: content, contact: contact,
                    tracking: trackingSettings.decide(origin: message.origin, override: message.request.tracking),
                    links: storedLinks[message.id] ?? []
                ))
            }
            return preparations
        }
    }

    /// The marketing messages among `messages` whose contact unsubscribed (from all, or from
    /// the message's topic) after the message was queued: one query per topic.
    static func unsubscribed(_ messages: [Message], workspaceId: String, db: any SQLDatabase) async throws -> Set<String> {
        let marketing = messages.filter { $0.origin.marketing && !$0.status.isFinal }
        guard !marketing.isEmpty else { return [] }
        let subscriptions = SubscriptionRepository(db, workspaceId: workspaceId)
        var cancelled = Set<String>()
        for (topicId, group) in Dictionary(grouping: marketing, by: \.origin.topicId) {
            let excluded = try await subscriptions.excluded(contactIds: Array(Set(group.map(\.contactId))), topicId: topicId)
            cancelled.formUnion(group.filter { excluded.contains($0.contactId) }.map(\.id))
        }
        return cancelled
    }

    /// Renders and builds the MIME message, signed when the sending domain has DKIM keys.
    private func build(_ prepared: Prepared, message: Message, vault: Vault, now: Date) async throws -> [UInt8] {
        let key = "\(message.templateId)#\(message.templateVersion)"
        templates.withLock { cache in
            if cache.count > 500 { cache.removeAll() }
            cache[key] = prepared.content
        }
        var variables = message.request.variables
        var contactFields: [String: JSONValue] = ["email": .string(message.request.rcpt)]
        for (name, value) in prepared.contact?.attributes ?? [:] { contactFields[name] = value.json }
        variables["contact"] = .object(contactFields)
        // The link's token names this contact and message; it is good for the workspace's lifetime.
        // Made only when the message shows it.
        let usesLink = prepared.content.variables.contains("unsubscribe_link")
        let token = message.origin.marketing || usesLink
            ? UnsubscribeToken(workspaceId: message.workspaceId, contactId: message.contactId, messageId: message.id).encode(with: vault) : ""
        let unsubscribeLink = usesLink ? SubscriptionService.preferenceURL(publicURL: settings.publicURL, token: token) : ""
        let rendered = try prepared.content.render(TemplateService.context(variables, unsubscribeLink: unsubscribeLink))
        let html = try await tracked(rendered.html, prepared: prepared, message: message)
        var replyTo = rendered.replyToAddress.map { Mailbox(rendered.replyToName ?? "", $0) }
        if let raw = message.request.replyTo {
            let mailbox = try MailboxSource(parsing: raw, field: "replyTo")
            replyTo = Mailbox(mailbox.displayName, try EmailAddress(mailbox.address, field: "replyTo"))
        }
        let outgoing = OutgoingMessage(
            from: Mailbox(rendered.fromName, rendered.fromAddress),
            to: [Mailbox("", try EmailAddress(message.request.rcpt))],
            cc: try message.request.cc.map { Mailbox("", try EmailAddress($0)) },
            replyTo: replyTo, subject: rendered.subject, messageId: message.messageIdHeader, date: now,
            text: rendered.text, html: html,
            attachments: message.request.attachments.map { attachment in
                Attachment(filename: attachment.filename, contentType: attachment.contentType, content: Array(Data(base64Encoded: attachment.content) ?? Data()))
            },
            extraHeaders: headers(message, token: token, fromDomain: rendered.fromAddress.domain)
        )
        let bytes = MIMEBuilder.build(outgoing, boundarySeed: message.id)
        let domain = rendered.fromAddress.value.split(separator: "@").last.map(String.init) ?? ""
        let keys = try await keys(workspaceId: message.workspaceId, domain: domain)
        return keys.isEmpty ? bytes : try DKIMSigner.sign(bytes, with: keys, at: now)
    }

    /// The caller's headers; a marketing message also carries `List-Unsubscribe` (one-click
    /// HTTPS and mailto) and `List-Unsubscribe-Post` (RFC 8058), which DKIM signs. Transactional
    /// mail gets none of Tidings' own.
    private func headers(_ message: Message, token: String, fromDomain: String) -> [(name: String, value: String)] {
        var headers = message.request.headers.compactMap { $0.count == 2 ? (name: $0[0], value: $0[1]) : nil }
        guard message.origin.marketing else { return headers }
        headers.removeAll { ["list-unsubscribe", "list-unsubscribe-post"].contains($0.name.lowercased()) }
        return headers + SubscriptionService.listUnsubscribeHeaders(publicURL: settings.publicURL, token: token, fromDomain: fromDomain)
    }

    /// The HTML with tracked links and the open pixel, when the message is tracked; its link
    /// list is stored first.
    private func tracked(_ html: String, prepared: Prepared, message: Message) async throws -> String {
        guard prepared.tracking.any else { return html }
        let publicURL = settings.publicURL
        let vault = try await env.keyring.vault(for: message.workspaceId)
        let (result, links) = MessageTracking(publicURL: publicURL).apply(
            html: html, messageId: message.id, decision: prepared.tracking, existing: prepared.links, vault: vault
        )
        if links != prepared.links {
            try await linkWrites.submit(LinkList(vault: vault, messageId: message.id, urls: links))
        }
        return result
    }

    private func keys(workspaceId: String, domain: String) async throws -> [DKIMKey] {
        let cacheKey = workspaceId + "|" + domain
        if let cached = signingKeys.withLock({ $0[cacheKey] }), ContinuousClock.now - cached.loaded < Self.keysLifetime {
            return cached.keys
        }
        let keys = try await DomainService(env).signingKeys(workspaceId: workspaceId, domain: domain)
        signingKeys.withLock { cache in
            if cache.count > 1000 { cache.removeAll() }
            cache[cacheKey] = (ContinuousClock.now, keys)
        }
        return keys
    }

    private func pool(for server: EmailServer) -> SMTPPool {
        pools.withLock { pools in
            if let existing = pools[server.id], existing.version == server.updatedAt { return existing.pool }
            let security: SMTPSession.Security = switch server.security {
            case .tls: .implicitTLS
            case .starttls: .startTLS
            case .none: .none
            }
            let endpoint = SMTPEndpoint(
                host: server.host, port: server.port, security: security,
                username: server.username, password: server.password, clientName: settings.clientName, tlsPins: server.tlsPins
            )
            let pool = SMTPPool(
                endpoint: endpoint, tls: settings.tls, timeouts: settings.timeouts, maxConnections: server.maxConnections, rateLimit: server.rateLimit
            )
            if let old = pools[server.id]?.pool { Task { await old.shutdown() } }
            pools[server.id] = (server.updatedAt, pool)
            return pool
        }
    }

    // MARK: Outcomes

    private enum Outcome {
        case attempted(SMTPDelivery)
        case failed(String)
        case cancelled(String)
    }

    private func complete(_ job: Job) async throws {
        try await TenantScope.with(.instance) {
            try await env.database.transaction { db in try await JobRepository(db).complete(ids: [job.id]) }
        }
    }

    /// Records the attempt: delivered or bounced when every recipient is settled, deferred
    /// (and rescheduled) while any is not, failed once retrying is over.
    private func finish(_ job: Job, _ attempted: Message, vault: Vault, outcome: Outcome) async throws {
        let now = env.now()
        var message = attempted
        message.updatedAt = now
        var events: [MessageEvent] = []
        var suppress: (reply: String, code: String)?
        var reschedule: Date?
        /// What happened to the primary recipient in this attempt, for webhooks.
        var told: (type: WebhookEventType, reason: String?)?
        switch outcome {
        case .failed(let reason):
            message.status = .failed
            message.nextAttemptAt = nil
            events.append(MessageEvent(id: Identifier.make("me", at: now), kind: .failed, detail: ["reason": .string(reason)], at: now))
            told = (.messageFailed, reason)
        case .cancelled(let reason):
            message.status = .cancelled
            message.nextAttemptAt = nil
            events.append(MessageEvent(id: Identifier.make("me", at: now), kind: .cancelled, detail: ["reason": .string(reason)], at: now))
        case .attempted(let delivery):
            if let info = delivery.tls {
                message.tlsVersion = info.version
                message.tlsCipher = info.cipher
                message.tlsVerified = info.verified
            }
            var delivered: [String: JSONValue] = [:]
            var bounced: [String: JSONValue] = [:]
            var deferred: [String: JSONValue] = [:]
            for (recipient, result) in delivery.outcomes {
                switch result {
                case .delivered(let reply):
                    delivered[recipient] = .string(reply.description)
                    message.request.settled.append(recipient)
                case .bounced(let reply):
                    bounced[recipient] = .string(reply.description)
                    message.request.settled.append(recipient)
                    if recipient == message.request.rcpt, reply.isMailboxFailure {
                        suppress = (reply.description, reply.enhancedCode ?? "\(reply.code)")
                    }
                case .deferred(let reason):
                    deferred[recipient] = .string(reason)
                }
            }
            // Each outcome of the attempt carries the TLS that carried it.
            var tls: [String: JSONValue] = [:]
            if let info = delivery.tls {
                tls = ["tlsVersion": .string(info.version), "tlsCipher": .string(info.cipher), "tlsVerified": .bool(info.verified)]
                // A key matching no pin never carries a message: the connection ends at the handshake.
                if info.pinMatched == true { tls["tlsPin"] = .string("matched") }
            }
            if !delivered.isEmpty {
                events.append(MessageEvent(id: Identifier.make("me", at: now), kind: .delivered, detail: ["replies": .object(delivered)].merging(tls) { $1 }, at: now))
            }
            if !bounced.isEmpty {
                events.append(MessageEvent(id: Identifier.make("me", at: now), kind: .bounced, detail: ["replies": .object(bounced)].merging(tls) { $1 }, at: now))
            }
            let primary = message.request.rcpt
            if case .string(let reply)? = bounced[primary] {
                told = (.messageBounced, reply)
            } else if delivered[primary] != nil {
                told = (.messageDelivered, nil)
            }
            if deferred.isEmpty {
                message.status = delivered[primary] != nil ? .delivered : bounced[primary] != nil ? .bounced : .delivered
                message.nextAttemptAt = nil
            } else if now.timeIntervalSince(message.createdAt) >= settings.giveUpAfter {
                message.status = delivered[primary] != nil ? .delivered : bounced[primary] != nil ? .bounced : .failed
                message.nextAttemptAt = nil
                let reason = "Not delivered within \(Int(settings.giveUpAfter / 3600)) hours; no further attempts."
                events.append(MessageEvent(id: Identifier.make("me", at: now), kind: .failed, detail: [
                    "reason": .string(reason),
                    "replies": .object(deferred),
                ], at: now))
                if case .string(let last)? = deferred[primary] { told = (.messageFailed, "\(reason) Last reply: \(last)") }
            } else {
                let next = now.addingTimeInterval(settings.backoff(afterAttempt: message.attempts))
                reschedule = next
                message.status = delivered[primary] != nil ? .delivered : bounced[primary] != nil ? .bounced : .deferred
                message.nextAttemptAt = next
                events.append(MessageEvent(id: Identifier.make("me", at: now), kind: .deferred, detail: [
                    "replies": .object(deferred), "nextAttemptAt": .string(Timestamp.format(next)),
                ].merging(tls) { $1 }, at: now))
                if case .string(let reason)? = deferred[primary] { told = (.messageDeferred, reason) }
            }
        }
        let final = message
        let webhook = told.map { Self.webhookEvent($0.type, final, reason: $0.reason, at: now) }
        try await completions.submit(Completion(
            job: job, message: final, events: events, nextRun: reschedule, suppression: suppress, vault: vault, webhook: webhook
        ))
        env.logger.info("Message attempt finished", metadata: [
            "message": "\(final.id)", "status": "\(final.status.rawValue)", "attempt": "\(final.attempts)",
            "recipient": "\(vault.pseudonym(final.request.rcpt))",
        ])
    }
}

extension DeliveryWorker {
    /// `message.delivered`, `.deferred`, `.bounced` or `.failed`, about the message's own
    /// recipient: `{messageId, contactId, email, templateSlug, origin: {kind, id}, status, reason?}`.
    static func webhookEvent(_ type: WebhookEventType, _ message: Message, reason: String?, at now: Date) -> WebhookEvent {
        var data: [String: JSONValue] = [
            "messageId": .string(message.id), "contactId": .string(message.contactId), "email": .string(message.request.rcpt),
            "templateSlug": .string(message.templateSlug),
            "origin": .object(["kind": .string(message.origin.kind.rawValue), "id": message.origin.id.map(JSONValue.string) ?? .null]),
            "status": .string(String(type.rawValue.dropFirst("message.".count))),
        ]
        if let reason { data["reason"] = .string(reason) }
        return WebhookEvent(type, data: data, at: now)
    }
}

extension CompiledTemplate {
    /// The envelope sender (MAIL FROM): the template's From address.
    static func senderAddress(_ template: CompiledTemplate) throws -> String {
        template.fromAddress.value
    }
}

extension Optional {
    func asyncFlatMap<U>(_ transform: (Wrapped) async throws -> U?) async rethrows -> U? {
        guard let value = self else { return nil }
        return try await transform(value)
    }
}
