import Foundation
import TidingsDomain
import TidingsServices

/// The use cases the HTTP layer calls, handed in by the composition root.
public struct APIServices: Sendable {
    public var contacts: ContactService
    public var events: EventService
    public var apiKeys: APIKeyService
    public var templates: TemplateService
    public var domains: DomainService
    public var emailServers: EmailServerService
    public var messages: MessageService
    public var suppressions: SuppressionService
    public var audit: AuditService
    public var segments: SegmentService
    public var announcements: AnnouncementService
    public var automations: AutomationService
    public var webhooks: WebhookService
    public var tracking: TrackingService
    public var stats: StatsService
    public var accounts: AccountService
    public var accountSettings: AccountService.Settings
    /// Every workspace (operators choose one to open).
    public var listWorkspaces: @Sendable () async throws -> [Workspace]
    /// Opens a CSV import for a workspace (the service keeps per-import state).
    public var makeImport: @Sendable (_ workspaceId: String, _ types: String?, _ actor: AuditActor) throws -> ContactImport
    /// Database reachable and migrations current.
    public var isReady: @Sendable () async -> Bool
    public var now: @Sendable () -> Date
    /// The largest CSV upload an import reads.
    public var importMaxBytes: Int
    public var topics: TopicService
    /// Contacts' subscriptions: the API, the preference page and one-click unsubscribes.
    public var subscriptions: SubscriptionService

    public init(
        contacts: ContactService, events: EventService, apiKeys: APIKeyService, templates: TemplateService, domains: DomainService, emailServers: EmailServerService,
        messages: MessageService, suppressions: SuppressionService, audit: AuditService, automations: AutomationService,
        segments: SegmentService, announcements: AnnouncementService, webhooks: WebhookService,
        accounts: AccountService, accountSettings: AccountService.Settings, listWorkspaces: @escaping @Sendable () async throws -> [Workspace],
        makeImport: @escaping @Sendable (String, String?, AuditActor) throws -> ContactImport,
        isReady: @escaping @Sendable () async -> Bool, now: @escaping @Sendable () -> Date,
        importMaxBytes: Int = 256 * 1024 * 1024, topics: TopicService, subscriptions: SubscriptionService,
        tracking: TrackingService, stats: StatsService
    ) {
        self.topics = topics
        self.subscriptions = subscriptions
        self.tracking = tracking
        self.stats = stats
        self.importMaxBytes = importMaxBytes
        self.contacts = contacts
        self.events = events
        self.apiKeys = apiKeys
        self.templates = templates
        self.domains = domains
        self.emailServers = emailServers
        self.messages = messages
        self.suppressions = suppressions
        self.audit = audit
        self.segments = segments
        self.announcements = announcements
        self.automations = automations
        self.webhooks = webhooks
        self.accounts = accounts
        self.accountSettings = accountSettings
        self.listWorkspaces = listWorkspaces
        self.makeImport = makeImport
        self.isReady = isReady
        self.now = now
    }

}
