import Crypto
import Foundation
import TidingsCrypto
import TidingsDomain
import TidingsStorage

/// Team accounts: members and operators, sign-in with password and mandatory TOTP,
/// sessions, roles per workspace, and the reviews that keep access least-privileged.
public struct AccountService: Sendable {
    public struct Settings: Sendable {
        /// A session ends after this long without a request (default 30 minutes).
        public var sessionIdleTimeout: TimeInterval = 30 * 60
        /// And this long after sign-in, however active (default 12 hours).
        public var sessionLifetime: TimeInterval = 12 * 3600
        /// How long a setup link stays valid (default 72 hours).
        public var setupLinkLifetime: TimeInterval = 72 * 3600
        /// Accounts unused this long are disabled (default 90 days).
        public var inactivityLimit: TimeInterval = 90 * 24 * 3600
        /// How long an operator's recorded reason opens a workspace (default 4 hours).
        public var operatorAccessLifetime: TimeInterval = 4 * 3600
        /// Where the dashboard is reached, for setup links.
        public var publicURL: String = "http://127.0.0.1:8080"
        public var passwordHashing: PasswordHasher.Parameters = .recommended

        public init() {}
    }

    /// The confidentiality statement operators acknowledge before first access (T6.2).
    /// A new version needs a new acknowledgement.
    public static let confidentialityStatementVersion = "2026-11-30"
    public static let confidentialityStatement = """
        I will access customer data only when my work running this instance requires it, \
        record my reason each time, keep what I see confidential during and after my work, \
        and report any suspected breach at once.
        """

    let env: ServiceEnvironment
    let settings: Settings
    let policy: PasswordPolicy
    let passwords: PasswordHasher
    let recoveryCodes: RecoveryCodes

    public init(_ env: ServiceEnvironment, settings: Settings = Settings(), commonPasswords: CommonPasswordList) {
        self.env = env
        self.settings = settings
        self.policy = PasswordPolicy(commonPasswords: commonPasswords)
        self.passwords = PasswordHasher(parameters: settings.passwordHashing)
        self.recoveryCodes = RecoveryCodes(key: env.hasher.derivedKey(for: "recovery-codes"))
    }

    /// Failures before sign-in is slowed down, per account and per network.
    static let freeFailuresPerAccount = 5
    static let freeFailuresPerNetwork = 20
    static let maxBlock: TimeInterval = 15 * 60

    // MARK: Adding people

    public struct Added: Sendable {
        public var account: Account
        /// The single-use link where the person sets a password and enrols MFA; `nil`
        /// when the account was already set up (it only gained a membership).
        public var setupLink: String?
    }

    /// Adds a member to a workspace, creating the account if needed.
    public func addMember(workspaceId: String, email rawEmail: String, role: Role, by actor: AuditActor) async throws -> Added {
        let email = try EmailAddress(rawEmail)
        let instance = try await env.keyring.vault(for: Vault.instanceScope)
        let workspace = try await env.keyring.vault(for: workspaceId)
        let audit = try await env.auditRecorder()
        let now = env.now()
        let token = SecretHasher.randomToken()
        return try await env.database.transaction { db in
            guard try await WorkspaceRepository.exists(id: workspaceId, in: db) else {
                throw DomainError.notFound("workspace_not_found", "No workspace with this id exists.")
            }
            let accounts = AccountRepository(db, instance: instance)
            let (account, created) = try await Self.findOrCreate(email: email, kind: .member, in: accounts, at: now)
            guard account.kind == .member else {
                throw DomainError(.conflict, code: "account_is_operator", message: "Operator accounts cannot be workspace members.")
            }
            try await accounts.upsertMembership(Membership(workspaceId: workspaceId, accountId: account.id, role: role, createdAt: now))
            var link: String?
            if account.status == .invited {
                try await accounts.insertSetupLink(tokenHash: env.hasher.hash(token), accountId: account.id, expiresAt: now + settings.setupLinkLifetime)
                link = setupURL(token)
            }
            var records: [(stream: String, actor: AuditActor, change: AuditChange)] = [
                (workspaceId, actor, AuditChange("member.added", target: ("account", account.id), summary: [
                    "email": .string(workspace.pseudonym(email.value)), "role": .string(role.rawValue),
                ])),
            ]
            if created {
                records.append((Vault.instanceScope, actor, AuditChange("account.created", target: ("account", account.id), summary: [
                    "email": .string(instance.pseudonym(email.value)), "kind": .string("member"),
                ])))
            }
            try await audit.record(records, db: db)
            return Added(account: account, setupLink: link)
        }
    }

    /// Adds an operator (a person running this instance).
    public func addOperator(email rawEmail: String, by actor: AuditActor) async throws -> Added {
        let email = try EmailAddress(rawEmail)
        let instance = try await env.keyring.vault(for: Vault.instanceScope)
        let audit = try await env.auditRecorder()
        let now = env.now()
        let token = SecretHasher.randomToken()
        return try await env.database.transaction { db in
            let accounts = AccountRepository(db, instance: instance)
            let (account, created) = try await Self.findOrCreate(email: email, kind: .operator, in: accounts, at: now)
            guard account.kind == .operator, created || account.status == .invited else {
                throw DomainError(.conflict, code: "account_exists", message: "An account with this address exists already.")
            }
            try await accounts.insertSetupLink(tokenHash: env.hasher.hash(token), accountId: account.id, expiresAt: now + settings.setupLinkLifetime)
            try await audit.record(AuditChange("account.created", target: ("account", account.id), summary: [
                "email": .string(instance.pseudonym(email.value)), "kind": .string("operator"),
            ]), in: Vault.instanceScope, by: actor, db: db)
            return Added(account: account, setupLink: setupURL(token))
        }
    }

    private static func findOrCreate(email: EmailAddress, kind: AccountKind, in accounts: AccountRepository, at now: Date) async throws -> (Account, Bool) {
        if let existing = try await accounts.find(email: email) { return (existing.account, false) }
        let account = Account(
            id: Identifier.make("usr", at: now), email: email, kind: kind, status: .invited, mfaEnrolled: false,
            createdAt: now, lastSignInAt: nil, disabledAt: nil
        )
        guard try await accounts.insert(account) else {
            throw DomainError(.conflict, code: "concurrent_update", message: "The account was created concurrently; retry.")
        }
        return (account, true)
    }

    private func setupURL(_ token: String) -> String {
        settings.publicURL.trimmingCharacters(in: CharacterSet(charactersIn: "/")) + "/setup/" + token
    }

    public func account(email rawEmail: String) async throws -> Account? {
        let email = try EmailAddress(rawEmail)
        let instance = try await env.keyring.vault(for: Vault.instanceScope)
        return try await env.database.read { db in try await AccountRepository(db, instance: instance).find(email: email)?.account }
    }

    // MARK: Setup, sign-in and MFA

    /// The account a setup link belongs to, if the link is still valid.
    public func setupAccount(token: String) async throws -> Account? {
        let instance = try await env.keyring.vault(for: Vault.instanceScope)
        let hash = env.hasher.hash(token)
        return try await env.database.read { db in
            let accounts = AccountRepository(db, instance: instance)
            guard let id = try await accounts.setupLink(tokenHash: hash, at: env.now()) else { return nil }
            return try await accounts.find(id: id)?.account
        }
    }

    /// Sets the password through a setup link and starts a session whose only way on is MFA enrolment.
    public func completeSetup(token: String, password: String, actor: AuditActor) async throws -> String {
        guard let account = try await setupAccount(token: token), account.status != .disabled else {
            throw DomainError.notFound("setup_link_invalid", "This setup link is invalid, used or expired. Ask for a new one.")
        }
        do {
            try policy.validate(password, email: account.email.value)
        } catch {
            throw DomainError.invalid("weak_password", error.description, field: "password")
        }
        let hash = try await passwords.hash(password)
        let instance = try await env.keyring.vault(for: Vault.instanceScope)
        let audit = try await env.auditRecorder()
        let now = env.now()
        let session = SecretHasher.randomToken()
        let linkHash = env.hasher.hash(token)
        try await env.database.transaction { db in
            let accounts = AccountRepository(db, instance: instance)
            guard try await accounts.useSetupLink(tokenHash: linkHash, at: now) else {
                throw DomainError.notFound("setup_link_invalid", "This setup link is invalid, used or expired. Ask for a new one.")
            }
            try await accounts.setPassword(accountId: account.id, hash: hash)
            try await accounts.deleteSessions(accountId: account.id)
            try await accounts.insertSession(tokenHash: env.hasher.hash(session), accountId: account.id, stage: .mfaEnrolment, at: now)
            try await audit.record(AuditChange("account.password_set", target: ("account", account.id)), in: Vault.instanceScope,
                                   by: actor.as(account), db: db)
        }
        return session
    }

    public enum SignInResult: Sendable, Equatable {
        /// Password accepted: a session that still needs MFA (or MFA enrolment).
        case session(token: String, stage: AccountRepository.SessionStage)
        /// Wrong address or password, or a disabled account: the caller says only that.
        case failed
        /// Too many failures: try again after this many seconds.
        case throttled(retryAfter: Int)
    }

    /// The first factor. Failures are counted per account and per network, with growing
    /// delays; every failure looks the same to the caller.
    public func signIn(email rawEmail: String, password: String, actor: AuditActor) async throws -> SignInResult {
        let instance = try await env.keyring.vault(for: Vault.instanceScope)
        let now = env.now()
        let email = try? EmailAddress(rawEmail)
        let accountSubject = "account:" + instance.pseudonym(email?.value ?? rawEmail.lowercased())
        let networkSubject = "network:" + (actor.network ?? "unknown")
        let (stored, blockedUntil) = try await env.database.read { db in
            let accounts = AccountRepository(db, instance: instance)
            let byAccount = try await accounts.throttle(subject: accountSubject)
            let byNetwork = try await accounts.throttle(subject: networkSubject)
            let blocked = [byAccount.blockedUntil, byNetwork.blockedUntil].compactMap { $0 }.filter { $0 > now }.max()
            var stored: AccountRepository.Stored?
            if let email { stored = try await accounts.find(email: email) }
            return (stored, blocked)
        }
        if let blockedUntil {
            return .throttled(retryAfter: max(1, Int((blockedUntil.timeIntervalSince(now)).rounded(.up))))
        }
        // Unknown addresses cost the same hash as known ones, so timing reveals nothing.
        let verified = await passwords.verify(password, against: stored?.passwordHash ?? Self.decoyHash)
        let audit = try await env.auditRecorder()
        guard verified, let stored, stored.account.status != .disabled, stored.passwordHash != nil else {
            try await env.database.transaction { db in
                let accounts = AccountRepository(db, instance: instance)
                try await Self.countFailure(accountSubject, free: Self.freeFailuresPerAccount, in: accounts, at: now)
                try await Self.countFailure(networkSubject, free: Self.freeFailuresPerNetwork, in: accounts, at: now)
                try await audit.record(AuditChange("account.sign_in_failed", summary: ["email": .string(instance.pseudonym(email?.value ?? rawEmail))]),
                                       in: Vault.instanceScope, by: actor, db: db)
            }
            return .failed
        }
        let token = SecretHasher.randomToken()
        let stage: AccountRepository.SessionStage = stored.account.mfaEnrolled ? .mfaRequired : .mfaEnrolment
        try await env.database.transaction { db in
            let accounts = AccountRepository(db, instance: instance)
            try await accounts.clearThrottle(subject: accountSubject)
            try await accounts.insertSession(tokenHash: env.hasher.hash(token), accountId: stored.account.id, stage: stage, at: now)
        }
        return .session(token: token, stage: stage)
    }

    /// A valid scrypt string for a password nobody knows.
    static let decoyHash = "$scrypt$ln=15,r=8,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"

    private static func countFailure(_ subject: String, free: Int, in accounts: AccountRepository, at now: Date) async throws {
        let failures = try await accounts.throttle(subject: subject).failures + 1
        var blockedUntil: Date?
        if failures > free {
            // 1 s, 2 s, 4 s … doubling with each failure, at most 15 minutes.
            blockedUntil = now + min(maxBlock, pow(2, Double(min(failures - free - 1, 20))))
        }
        try await accounts.recordFailure(subject: subject, failures: failures, blockedUntil: blockedUntil, at: now)
    }

    /// Who a session belongs to, once it has passed both factors (or which step it is at).
    public struct SignedIn: Sendable {
        public var account: Account
        public var stage: AccountRepository.SessionStage
        public var sessionHash: String
        /// For the CSRF token of this session's forms.
        public var token: String
    }

    /// Checks a session cookie: unknown, idle too long, too old, or of a disabled account → `nil`.
    public func session(token: String) async throws -> SignedIn? {
        let instance = try await env.keyring.vault(for: Vault.instanceScope)
        let hash = env.hasher.hash(token)
        let now = env.now()
        // Every dashboard request checks its session: read it, and write only when the session
        // has ended (delete it) or was last touched over a minute ago, so most requests never
        // take the database's writer.
        let (session, stored) = try await env.database.read { db in
            let accounts = AccountRepository(db, instance: instance)
            guard let session = try await accounts.session(tokenHash: hash) else { return (nil, nil) as (AccountRepository.Session?, AccountRepository.Stored?) }
            return (session, try await accounts.find(id: session.accountId))
        }
        guard let session else { return nil }
        guard now.timeIntervalSince(session.lastSeenAt) <= settings.sessionIdleTimeout,
              now.timeIntervalSince(session.createdAt) <= settings.sessionLifetime,
              let stored, stored.account.status != .disabled
        else {
            try await env.database.transaction { db in try await AccountRepository(db, instance: instance).deleteSession(tokenHash: hash) }
            return nil
        }
        if now.timeIntervalSince(session.lastSeenAt) > 60 {
            try await env.database.transaction { db in try await AccountRepository(db, instance: instance).touchSession(tokenHash: hash, at: now) }
        }
        return SignedIn(account: stored.account, stage: session.stage, sessionHash: hash, token: token)
    }

    /// Starts TOTP enrolment: a fresh 160-bit secret, kept (sealed) with the session until confirmed.
    public func beginEnrolment(_ session: SignedIn) async throws -> (secret: String, uri: String) {
        guard session.stage == .mfaEnrolment else {
            throw DomainError(.conflict, code: "mfa_already_enrolled", message: "This account has MFA already.")
        }
        let totp = TOTP(secret: TOTP.generateSecret())!
        let instance = try await env.keyring.vault(for: Vault.instanceScope)
        try await env.database.transaction { db in
            try await AccountRepository(db, instance: instance).setPendingTOTP(tokenHash: session.sessionHash, secret: totp.base32Secret)
        }
        return (totp.base32Secret, totp.provisioningURI(issuer: "Tidings", accountName: session.account.email.value))
    }

    /// Confirms enrolment with a code from the app; returns a new (rotated) session token
    /// and the ten recovery codes, shown once.
    public func confirmEnrolment(_ session: SignedIn, code: String, actor: AuditActor) async throws -> (token: String, recoveryCodes: [String]) {
        let instance = try await env.keyring.vault(for: Vault.instanceScope)
        let now = env.now()
        let pending = try await env.database.read { db in
            try await AccountRepository(db, instance: instance).session(tokenHash: session.sessionHash)?.pendingTOTPSecret
        }
        guard session.stage == .mfaEnrolment, let pending, let totp = TOTP(base32Secret: pending) else {
            throw DomainError(.conflict, code: "mfa_enrolment_not_started", message: "Start MFA enrolment first.")
        }
        guard let step = totp.verify(code, at: now, lastUsedStep: nil) else {
            throw DomainError.invalid("invalid_code", "That code is not the current one. Check the time on your device and try again.", field: "code")
        }
        let codes = RecoveryCodes.generate()
        let hashes = codes.compactMap(recoveryCodes.storedForm)
        let token = SecretHasher.randomToken()
        let audit = try await env.auditRecorder()
        try await env.database.transaction { db in
            let accounts = AccountRepository(db, instance: instance)
            try await accounts.enrolTOTP(accountId: session.account.id, secret: pending, step: step, at: now)
            try await accounts.replaceRecoveryCodes(accountId: session.account.id, hashes: hashes)
            try await accounts.deleteSession(tokenHash: session.sessionHash)
            try await accounts.insertSession(tokenHash: env.hasher.hash(token), accountId: session.account.id, stage: .complete, at: now)
            try await accounts.recordSignIn(accountId: session.account.id, at: now)
            try await audit.record(AuditChange("account.mfa_enrolled", target: ("account", session.account.id)),
                                   in: Vault.instanceScope, by: actor.as(session.account), db: db)
        }
        return (token, codes)
    }

    /// The second factor: a TOTP code (never the same time step twice) or an unused
    /// recovery code. Returns the new, rotated session token.
    public func verifySecondFactor(_ session: SignedIn, code: String, actor: AuditActor) async throws -> String {
        guard session.stage == .mfaRequired else {
            throw DomainError(.conflict, code: "mfa_not_expected", message: "This session does not wait for a code.")
        }
        let instance = try await env.keyring.vault(for: Vault.instanceScope)
        let now = env.now()
        let audit = try await env.auditRecorder()
        let token = SecretHasher.randomToken()
        let accepted = try await env.database.transaction { db in
            let accounts = AccountRepository(db, instance: instance)
            guard let stored = try await accounts.find(id: session.account.id), let secret = stored.totpSecret,
                  let totp = TOTP(base32Secret: secret) else { return false }
            var method = "totp"
            if let step = totp.verify(code, at: now, lastUsedStep: stored.totpLastStep) {
                guard try await accounts.useTOTPStep(accountId: stored.account.id, step: step) else { return false }
            } else {
                let unused = try await accounts.unusedRecoveryCodes(accountId: stored.account.id)
                guard let index = recoveryCodes.firstMatch(code, in: unused),
                      try await accounts.useRecoveryCode(accountId: stored.account.id, hash: unused[index], at: now)
                else { return false }
                method = "recovery_code"
            }
            try await accounts.deleteSession(tokenHash: session.sessionHash)
            try await accounts.insertSession(tokenHash: env.hasher.hash(token), accountId: stored.account.id, stage: .complete, at: now)
            try await accounts.recordSignIn(accountId: stored.account.id, at: now)
            try await audit.record(AuditChange("account.signed_in", target: ("account", stored.account.id), summary: ["method": .string(method)]),
                                   in: Vault.instanceScope, by: actor.as(stored.account), db: db)
            return true
        }
        guard accepted else {
            try await env.database.transaction { db in
                try await audit.record(AuditChange("account.mfa_failed", target: ("account", session.account.id)),
                                       in: Vault.instanceScope, by: actor.as(session.account), db: db)
            }
            throw DomainError.invalid("invalid_code", "That code is not valid.", field: "code")
        }
        return token
    }

    /// The anti-forgery token for forms of the session holding `token`: derived from it,
    /// so it needs no storage and dies with the session.
    public func csrfToken(forSession token: String) -> String {
        SecretHasher.hex(HMAC<SHA256>.authenticationCode(for: Data(token.utf8), using: env.hasher.derivedKey(for: "csrf")))
    }

    /// A random value for the pre-session anti-forgery cookie of sign-in and setup forms.
    public func newFormToken() -> String { SecretHasher.randomToken() }

    public func signOut(token: String) async throws {
        let instance = try await env.keyring.vault(for: Vault.instanceScope)
        let hash = env.hasher.hash(token)
        try await env.database.transaction { db in try await AccountRepository(db, instance: instance).deleteSession(tokenHash: hash) }
    }

    // MARK: Workspaces and roles

    /// The workspaces a member belongs to, with their role.
    public func memberships(of account: Account) async throws -> [Membership] {
        let instance = try await env.keyring.vault(for: Vault.instanceScope)
        return try await env.database.read { db in try await AccountRepository(db, instance: instance).memberships(accountId: account.id) }
    }

    /// Checks, on every request, that `account` may do `permission` in the workspace; returns
    /// its role. Operators need a recorded, unexpired reason and may only view.
    @discardableResult
    public func authorize(_ account: Account, workspaceId: String, _ permission: Permission) async throws -> Role {
        let instance = try await env.keyring.vault(for: Vault.instanceScope)
        let now = env.now()
        let role: Role? = try await env.database.read { db in
            let accounts = AccountRepository(db, instance: instance)
            if account.kind == .operator {
                return try await accounts.hasOpenAccess(accountId: account.id, workspaceId: workspaceId, at: now) ? .viewer : nil
            }
            return try await accounts.membership(workspaceId: workspaceId, accountId: account.id)?.role
        }
        guard let role else {
            throw DomainError.notFound("workspace_not_found", "No workspace with this id exists, or you are not a member.")
        }
        guard role.permits(permission) else {
            throw DomainError(.forbidden, code: "insufficient_role", message: "Your role (\(role.rawValue)) does not allow this.")
        }
        return role
    }

    public struct Member: Sendable {
        public var account: Account
        public var role: Role
    }

    public func members(workspaceId: String) async throws -> [Member] {
        let instance = try await env.keyring.vault(for: Vault.instanceScope)
        return try await env.database.read { db in
            let accounts = AccountRepository(db, instance: instance)
            var result: [Member] = []
            for membership in try await accounts.members(workspaceId: workspaceId) {
                if let stored = try await accounts.find(id: membership.accountId) {
                    result.append(Member(account: stored.account, role: membership.role))
                }
            }
            return result
        }
    }

    /// Changes a member's role. Only owners grant or take away the owner role, and a
    /// workspace always keeps at least one owner. Takes effect on the member's next request.
    public func changeRole(workspaceId: String, accountId: String, to role: Role, by manager: Account, actor: AuditActor) async throws {
        let managerRole = try await authorize(manager, workspaceId: workspaceId, .manageMembers)
        let instance = try await env.keyring.vault(for: Vault.instanceScope)
        let audit = try await env.auditRecorder()
        let now = env.now()
        try await env.database.transaction { db in
            let accounts = AccountRepository(db, instance: instance)
            guard let current = try await accounts.membership(workspaceId: workspaceId, accountId: accountId) else {
                throw DomainError.notFound("member_not_found", "No such member in this workspace.")
            }
            if (current.role == .owner || role == .owner), !managerRole.permits(.manageOwners) {
                throw DomainError(.forbidden, code: "insufficient_role", message: "Only owners grant or take away the owner role.")
            }
            if current.role == .owner, role != .owner, try await accounts.members(workspaceId: workspaceId).filter({ $0.role == .owner }).count == 1 {
                throw DomainError(.conflict, code: "last_owner", message: "A workspace keeps at least one owner.")
            }
            try await accounts.upsertMembership(Membership(workspaceId: workspaceId, accountId: accountId, role: role, createdAt: now))
            try await audit.record(AuditChange("member.role_changed", target: ("account", accountId), summary: [
                "from": .string(current.role.rawValue), "to": .string(role.rawValue),
            ]), in: workspaceId, by: actor, db: db)
        }
    }

    /// Removes a member from a workspace; their sessions end at once.
    public func removeMember(workspaceId: String, accountId: String, by manager: Account, actor: AuditActor) async throws {
        let managerRole = try await authorize(manager, workspaceId: workspaceId, .manageMembers)
        let instance = try await env.keyring.vault(for: Vault.instanceScope)
        let audit = try await env.auditRecorder()
        try await env.database.transaction { db in
            let accounts = AccountRepository(db, instance: instance)
            guard let current = try await accounts.membership(workspaceId: workspaceId, accountId: accountId) else {
                throw DomainError.notFound("member_not_found", "No such member in this workspace.")
            }
            if current.role == .owner {
                guard managerRole.permits(.manageOwners) else {
                    throw DomainError(.forbidden, code: "insufficient_role", message: "Only owners remove owners.")
                }
                if try await accounts.members(workspaceId: workspaceId).filter({ $0.role == .owner }).count == 1 {
                    throw DomainError(.conflict, code: "last_owner", message: "A workspace keeps at least one owner.")
                }
            }
            _ = try await accounts.removeMembership(workspaceId: workspaceId, accountId: accountId)
            let ended = try await accounts.deleteSessions(accountId: accountId)
            try await audit.record(AuditChange("member.removed", target: ("account", accountId), summary: [
                "role": .string(current.role.rawValue), "sessionsEnded": .number(Double(ended)),
            ]), in: workspaceId, by: actor, db: db)
        }
    }

    /// Disables an account and ends its sessions at once.
    public func disable(accountId: String, reason: String, by actor: AuditActor) async throws {
        let instance = try await env.keyring.vault(for: Vault.instanceScope)
        let audit = try await env.auditRecorder()
        let now = env.now()
        try await env.database.transaction { db in
            let accounts = AccountRepository(db, instance: instance)
            guard try await accounts.find(id: accountId) != nil else {
                throw DomainError.notFound("account_not_found", "No account with this id exists.")
            }
            try await accounts.setStatus(accountId: accountId, .disabled, at: now)
            let ended = try await accounts.deleteSessions(accountId: accountId)
            try await audit.record(AuditChange("account.disabled", target: ("account", accountId), summary: [
                "reason": .string(reason), "sessionsEnded": .number(Double(ended)),
            ]), in: Vault.instanceScope, by: actor, db: db)
        }
    }

    /// Disables every account unused for the inactivity limit. Returns their ids.
    @discardableResult
    public func disableInactive() async throws -> [String] {
        let instance = try await env.keyring.vault(for: Vault.instanceScope)
        let cutoff = env.now() - settings.inactivityLimit
        let ids = try await env.database.read { db in try await AccountRepository(db, instance: instance).inactive(since: cutoff) }
        for id in ids {
            try await disable(accountId: id, reason: "inactive for \(Int(settings.inactivityLimit / 86400)) days", by: .system("inactivity"))
        }
        return ids
    }

    // MARK: Operators

    public func hasAcknowledgedStatement(_ account: Account) async throws -> Bool {
        let instance = try await env.keyring.vault(for: Vault.instanceScope)
        return try await env.database.read { db in
            try await AccountRepository(db, instance: instance).hasAcknowledged(accountId: account.id, version: Self.confidentialityStatementVersion)
        }
    }

    public func acknowledgeStatement(_ account: Account, actor: AuditActor) async throws {
        guard account.kind == .operator else {
            throw DomainError(.forbidden, code: "not_an_operator", message: "Only operators acknowledge the confidentiality statement.")
        }
        let instance = try await env.keyring.vault(for: Vault.instanceScope)
        let audit = try await env.auditRecorder()
        let now = env.now()
        try await env.database.transaction { db in
            try await AccountRepository(db, instance: instance).acknowledge(accountId: account.id, version: Self.confidentialityStatementVersion, at: now)
            try await audit.record(AuditChange("operator.statement_acknowledged", target: ("account", account.id), summary: [
                "version": .string(Self.confidentialityStatementVersion),
            ]), in: Vault.instanceScope, by: actor, db: db)
        }
    }

    /// Opens a workspace's data to an operator for a while, with a recorded reason that the
    /// workspace's owners see in their audit log.
    public func openWorkspace(_ account: Account, workspaceId: String, reason rawReason: String, actor: AuditActor) async throws {
        guard account.kind == .operator else {
            throw DomainError(.forbidden, code: "not_an_operator", message: "Only operators open workspaces with a reason.")
        }
        guard try await hasAcknowledgedStatement(account) else {
            throw DomainError(.forbidden, code: "statement_not_acknowledged", message: "Acknowledge the confidentiality statement first.")
        }
        let reason = try DisplayName.validate(rawReason, field: "reason", maxLength: 500)
        guard reason.count >= 10 else {
            throw DomainError.invalid("invalid_reason", "Describe the reason in at least 10 characters.", field: "reason")
        }
        let instance = try await env.keyring.vault(for: Vault.instanceScope)
        let workspace = try await env.keyring.vault(for: workspaceId)
        let audit = try await env.auditRecorder()
        let now = env.now()
        let id = Identifier.make("opa", at: now)
        try await env.database.transaction { db in
            guard try await WorkspaceRepository.exists(id: workspaceId, in: db) else {
                throw DomainError.notFound("workspace_not_found", "No workspace with this id exists.")
            }
            try await AccountRepository(db, instance: instance).openAccess(
                id: id, accountId: account.id, workspace: workspace, reason: reason, at: now, until: now + settings.operatorAccessLifetime
            )
            try await audit.record(AuditChange("operator.workspace_opened", target: ("operator_access", id), summary: [
                "operator": .string(account.id), "until": .string(Timestamp.format(now + settings.operatorAccessLifetime)),
            ]), in: workspaceId, by: actor, db: db)
        }
    }

    /// Operators' openings of the workspace with their reasons, for its owners and admins.
    public func operatorAccesses(workspaceId: String, viewer: Account) async throws -> [AccountRepository.OperatorAccess] {
        try await authorize(viewer, workspaceId: workspaceId, .readAuditLog)
        let instance = try await env.keyring.vault(for: Vault.instanceScope)
        let workspace = try await env.keyring.vault(for: workspaceId)
        return try await env.database.read { db in
            try await AccountRepository(db, instance: instance).operatorAccesses(workspace: workspace, limit: 100)
        }
    }

    // MARK: Access review

    public struct ReviewLine: Sendable {
        public var kind: String
        public var id: String
        public var label: String
        public var workspaceId: String?
        public var role: String
        public var status: String
        public var mfa: String
        public var lastUsed: Date?
    }

    /// Every account and API key with role, MFA state and last use, for a periodic review;
    /// the reviewer's sign-off is recorded in the instance's audit log.
    public func accessReview(reviewer: String, actor: AuditActor) async throws -> [ReviewLine] {
        let instance = try await env.keyring.vault(for: Vault.instanceScope)
        var lines: [ReviewLine] = []
        let workspaces = try await WorkspaceService(env).list()
        let accounts = try await env.database.read { db in try await AccountRepository(db, instance: instance).all() }
        for stored in accounts {
            let account = stored.account
            let memberships = try await memberships(of: account)
            let roles = account.kind == .operator ? [(nil as String?, "operator")] : memberships.map { ($0.workspaceId as String?, $0.role.rawValue) }
            for (workspaceId, role) in roles.isEmpty ? [(nil, "none")] : roles {
                lines.append(ReviewLine(
                    kind: account.kind.rawValue, id: account.id, label: account.email.value, workspaceId: workspaceId, role: role,
                    status: account.status.rawValue, mfa: account.mfaEnrolled ? "totp" : "not enrolled", lastUsed: account.lastSignInAt
                ))
            }
        }
        for workspace in workspaces {
            for key in try await APIKeyService(env).list(workspaceId: workspace.id) {
                let now = env.now()
                lines.append(ReviewLine(
                    kind: "api_key", id: key.id, label: key.name, workspaceId: workspace.id,
                    role: key.scopes.map(\.rawValue).joined(separator: ","), status: key.isUsable(at: now) ? "active" : "inactive",
                    mfa: "n/a", lastUsed: key.lastUsedAt
                ))
            }
        }
        let audit = try await env.auditRecorder()
        let summary: [String: JSONValue] = [
            "reviewer": .string(reviewer),
            "accounts": .number(Double(accounts.count)),
            "apiKeys": .number(Double(lines.filter { $0.kind == "api_key" }.count)),
        ]
        try await env.database.transaction { db in
            try await audit.record(AuditChange("access_review.signed_off", summary: summary), in: Vault.instanceScope, by: actor, db: db)
        }
        return lines
    }
}

extension AuditActor {
    /// The same request, attributed to the account it signed in.
    func `as`(_ account: Account) -> AuditActor {
        AuditActor(kind: account.kind == .operator ? .operator : .user, id: account.id, network: network, userAgent: userAgent)
    }
}
