import Foundation
import SQLKit
import TidingsCrypto
import TidingsDomain

/// Accounts of the instance, their memberships, recovery codes, sessions, setup links and
/// sign-in throttling. Addresses and TOTP secrets are sealed with the instance's keys and
/// found by blind index; everything secret a person holds is stored only as a hash.
public struct AccountRepository: Sendable {
    let db: any SQLDatabase
    let instance: Vault

    public init(_ db: any SQLDatabase, instance: Vault) {
        precondition(instance.scope == Vault.instanceScope, "accounts are sealed with the instance's keys")
        self.db = db
        self.instance = instance
    }

    /// An account with what sign-in needs.
    public struct Stored: Sendable {
        public var account: Account
        public var passwordHash: String?
        public var totpSecret: String?
        public var totpLastStep: Int64?
    }

    func emailIndex(_ email: EmailAddress) -> String { instance.blindIndex(email.value, column: "accounts.email") }

    public func insert(_ account: Account) async throws -> Bool {
        let sealed = try instance.seal(account.email.value, table: "accounts", column: "email", row: account.id)
        return try await db.raw("""
            INSERT INTO accounts (id, email_index, email_sealed, kind, status, created_at)
            VALUES (\(bind: account.id), \(bind: emailIndex(account.email)), \(bind: sealed), \(bind: account.kind.rawValue),
                    \(bind: account.status.rawValue), \(bind: Timestamp.format(account.createdAt)))
            ON CONFLICT (email_index) DO NOTHING RETURNING id
            """).first() != nil
    }

    public func find(email: EmailAddress) async throws -> Stored? {
        guard let row = try await db.raw("SELECT * FROM accounts WHERE email_index = \(bind: emailIndex(email))").first() else { return nil }
        return try await decode(row)
    }

    public func find(id: String) async throws -> Stored? {
        guard let row = try await db.raw("SELECT * FROM accounts WHERE id = \(bind: id)").first() else { return nil }
        return try await decode(row)
    }

    public func all() async throws -> [Stored] {
        var result: [Stored] = []
        for row in try await db.raw("SELECT * FROM accounts ORDER BY id").all() { result.append(try await decode(row)) }
        return result
    }

    public func setPassword(accountId: String, hash: String) async throws {
        try await db.raw("UPDATE accounts SET password_hash = \(bind: hash) WHERE id = \(bind: accountId)").run()
    }

    /// Stores the confirmed TOTP secret (sealed) and the step of the code that confirmed it.
    public func enrolTOTP(accountId: String, secret: String, step: Int64, at now: Date) async throws {
        let sealed = try instance.seal(secret, table: "accounts", column: "totp", row: accountId)
        try await db.raw("""
            UPDATE accounts SET totp_sealed = \(bind: sealed), totp_last_step = \(bind: step), mfa_enrolled_at = \(bind: Timestamp.format(now)),
                status = 'active'
            WHERE id = \(bind: accountId)
            """).run()
    }

    /// Records the time step of an accepted code, only if it is later than the last one:
    /// returns `false` when another request used this or a later step first (a replay).
    public func useTOTPStep(accountId: String, step: Int64) async throws -> Bool {
        try await db.raw("""
            UPDATE accounts SET totp_last_step = \(bind: step)
            WHERE id = \(bind: accountId) AND (totp_last_step IS NULL OR totp_last_step < \(bind: step)) RETURNING id
            """).first() != nil
    }

    public func recordSignIn(accountId: String, at now: Date) async throws {
        try await db.raw("UPDATE accounts SET last_sign_in_at = \(bind: Timestamp.format(now)) WHERE id = \(bind: accountId)").run()
    }

    public func setStatus(accountId: String, _ status: AccountStatus, at now: Date) async throws {
        let disabledAt: String? = status == .disabled ? Timestamp.format(now) : nil
        try await db.raw("""
            UPDATE accounts SET status = \(bind: status.rawValue), disabled_at = \(bind: disabledAt) WHERE id = \(bind: accountId)
            """).run()
    }

    /// Active accounts whose last sign-in (or creation, if never) is before `cutoff`.
    public func inactive(since cutoff: Date) async throws -> [String] {
        let stamp = Timestamp.format(cutoff)
        return try await db.raw("""
            SELECT id FROM accounts WHERE status <> 'disabled' AND COALESCE(last_sign_in_at, created_at) < \(bind: stamp)
            """).all().map { try $0.decode(column: "id", as: String.self) }
    }

    // MARK: Recovery codes

    public func replaceRecoveryCodes(accountId: String, hashes: [String]) async throws {
        try await db.raw("DELETE FROM account_recovery_codes WHERE account_id = \(bind: accountId)").run()
        for hash in hashes {
            try await db.raw("INSERT INTO account_recovery_codes (account_id, code_hash) VALUES (\(bind: accountId), \(bind: hash))").run()
        }
    }

    public func unusedRecoveryCodes(accountId: String) async throws -> [String] {
        try await db.raw("""
            SELECT code_hash FROM account_recovery_codes WHERE account_id = \(bind: accountId) AND used_at IS NULL ORDER BY code_hash
            """).all().map { try $0.decode(column: "code_hash", as: String.self) }
    }

    /// Marks a code used; `false` if it was used already (by a concurrent request).
    public func useRecoveryCode(accountId: String, hash: String, at now: Date) async throws -> Bool {
        try await db.raw("""
            UPDATE account_recovery_codes SET used_at = \(bind: Timestamp.format(now))
            WHERE account_id = \(bind: accountId) AND code_hash = \(bind: hash) AND used_at IS NULL RETURNING code_hash
            """).first() != nil
    }

    // MARK: Memberships

    public func memberships(accountId: String) async throws -> [Membership] {
        try await db.raw("SELECT * FROM memberships WHERE account_id = \(bind: accountId) ORDER BY workspace_id").all().map(Self.decodeMembership)
    }

    public func members(workspaceId: String) async throws -> [Membership] {
        try await db.raw("SELECT * FROM memberships WHERE workspace_id = \(bind: workspaceId) ORDER BY created_at, account_id").all()
            .map(Self.decodeMembership)
    }

    public func membership(workspaceId: String, accountId: String) async throws -> Membership? {
        try await db.raw("""
            SELECT * FROM memberships WHERE workspace_id = \(bind: workspaceId) AND account_id = \(bind: accountId)
            """).first().map(Self.decodeMembership)
    }

    public func upsertMembership(_ membership: Membership) async throws {
        try await db.raw("""
            INSERT INTO memberships (workspace_id, account_id, role, created_at)
            VALUES (\(bind: membership.workspaceId), \(bind: membership.accountId), \(bind: membership.role.rawValue),
                    \(bind: Timestamp.format(membership.createdAt)))
            ON CONFLICT (workspace_id, account_id) DO UPDATE SET role = excluded.role
            """).run()
    }

    public func removeMembership(workspaceId: String, accountId: String) async throws -> Bool {
        try await db.raw("""
            DELETE FROM memberships WHERE workspace_id = \(bind: workspaceId) AND account_id = \(bind: accountId) RETURNING account_id
            """).first() != nil
    }

    static func decodeMembership(_ row: any SQLRow) throws -> Membership {
        Membership(
            workspaceId: try row.decode(column: "workspace_id", as: String.self),
            accountId: try row.decode(column: "account_id", as: String.self),
            role: Role(rawValue: try row.decode(column: "role", as: String.self)) ?? .viewer,
            createdAt: try row.decodeTimestamp("created_at")
        )
    }

    // MARK: Setup links

    public func insertSetupLink(tokenHash: String, accountId: String, expiresAt: Date) async throws {
        try await db.raw("""
            INSERT INTO setup_links (token_hash, account_id, expires_at) VALUES (\(bind: tokenHash), \(bind: accountId), \(bind: Timestamp.format(expiresAt)))
            """).run()
    }

    /// The account a valid, unused, unexpired link belongs to.
    public func setupLink(tokenHash: String, at now: Date) async throws -> String? {
        try await db.raw("""
            SELECT account_id FROM setup_links
            WHERE token_hash = \(bind: tokenHash) AND used_at IS NULL AND expires_at > \(bind: Timestamp.format(now))
            """).first()?.decode(column: "account_id", as: String.self)
    }

    /// Uses the link up; `false` if it was used, or expired, already.
    public func useSetupLink(tokenHash: String, at now: Date) async throws -> Bool {
        let stamp = Timestamp.format(now)
        return try await db.raw("""
            UPDATE setup_links SET used_at = \(bind: stamp)
            WHERE token_hash = \(bind: tokenHash) AND used_at IS NULL AND expires_at > \(bind: stamp) RETURNING account_id
            """).first() != nil
    }

    // MARK: Sessions

    public enum SessionStage: String, Sendable {
        /// Password accepted; a TOTP or recovery code is still needed.
        case mfaRequired = "mfa_required"
        /// Password accepted on an account without MFA: enrolment comes before anything else.
        case mfaEnrolment = "mfa_enrolment"
        case complete
    }

    public struct Session: Sendable {
        public var tokenHash: String
        public var accountId: String
        public var stage: SessionStage
        public var createdAt: Date
        public var lastSeenAt: Date
        public var pendingTOTPSecret: String?
    }

    public func insertSession(tokenHash: String, accountId: String, stage: SessionStage, at now: Date) async throws {
        let stamp = Timestamp.format(now)
        try await db.raw("""
            INSERT INTO web_sessions (token_hash, account_id, stage, created_at, last_seen_at)
            VALUES (\(bind: tokenHash), \(bind: accountId), \(bind: stage.rawValue), \(bind: stamp), \(bind: stamp))
            """).run()
    }

    public func session(tokenHash: String) async throws -> Session? {
        guard let row = try await db.raw("SELECT * FROM web_sessions WHERE token_hash = \(bind: tokenHash)").first() else { return nil }
        let pending = try row.decode(column: "pending_totp_sealed", as: String?.self)
        return Session(
            tokenHash: tokenHash,
            accountId: try row.decode(column: "account_id", as: String.self),
            stage: SessionStage(rawValue: try row.decode(column: "stage", as: String.self)) ?? .mfaRequired,
            createdAt: try row.decodeTimestamp("created_at"),
            lastSeenAt: try row.decodeTimestamp("last_seen_at"),
            pendingTOTPSecret: try await pending.asyncMap { try await instance.open($0, table: "web_sessions", column: "pending_totp", row: tokenHash) }
        )
    }

    public func touchSession(tokenHash: String, at now: Date) async throws {
        try await db.raw("UPDATE web_sessions SET last_seen_at = \(bind: Timestamp.format(now)) WHERE token_hash = \(bind: tokenHash)").run()
    }

    public func setPendingTOTP(tokenHash: String, secret: String) async throws {
        let sealed = try instance.seal(secret, table: "web_sessions", column: "pending_totp", row: tokenHash)
        try await db.raw("UPDATE web_sessions SET pending_totp_sealed = \(bind: sealed) WHERE token_hash = \(bind: tokenHash)").run()
    }

    public func deleteSession(tokenHash: String) async throws {
        try await db.raw("DELETE FROM web_sessions WHERE token_hash = \(bind: tokenHash)").run()
    }

    /// Ends every session of the account (disabling, removal, password change).
    @discardableResult
    public func deleteSessions(accountId: String) async throws -> Int {
        try await db.raw("DELETE FROM web_sessions WHERE account_id = \(bind: accountId) RETURNING token_hash").all().count
    }

    // MARK: Throttling

    /// Failures so far and when the subject may try again.
    public func throttle(subject: String) async throws -> (failures: Int, blockedUntil: Date?) {
        guard let row = try await db.raw("SELECT failures, blocked_until FROM sign_in_throttle WHERE subject = \(bind: subject)").first() else {
            return (0, nil)
        }
        return (try row.decode(column: "failures", as: Int.self), try row.decodeOptionalTimestamp("blocked_until"))
    }

    public func recordFailure(subject: String, failures: Int, blockedUntil: Date?, at now: Date) async throws {
        try await db.raw("""
            INSERT INTO sign_in_throttle (subject, failures, last_failure_at, blocked_until)
            VALUES (\(bind: subject), \(bind: failures), \(bind: Timestamp.format(now)), \(bind: blockedUntil.stored))
            ON CONFLICT (subject) DO UPDATE SET failures = excluded.failures, last_failure_at = excluded.last_failure_at,
                blocked_until = excluded.blocked_until
            """).run()
    }

    public func clearThrottle(subject: String) async throws {
        try await db.raw("DELETE FROM sign_in_throttle WHERE subject = \(bind: subject)").run()
    }

    // MARK: Operators

    public func hasAcknowledged(accountId: String, version: String) async throws -> Bool {
        try await db.raw("""
            SELECT 1 AS one FROM operator_acknowledgements WHERE account_id = \(bind: accountId) AND statement_version = \(bind: version)
            """).first() != nil
    }

    public func acknowledge(accountId: String, version: String, at now: Date) async throws {
        try await db.raw("""
            INSERT INTO operator_acknowledgements (account_id, statement_version, acknowledged_at)
            VALUES (\(bind: accountId), \(bind: version), \(bind: Timestamp.format(now))) ON CONFLICT DO NOTHING
            """).run()
    }

    /// Records an operator's reason for opening a workspace; the reason is sealed with
    /// that workspace's keys (its owners read it in their audit log).
    public func openAccess(id: String, accountId: String, workspace: Vault, reason: String, at now: Date, until: Date) async throws {
        let sealed = try workspace.seal(reason, table: "operator_access", column: "reason", row: id)
        try await db.raw("""
            INSERT INTO operator_access (id, account_id, workspace_id, reason_sealed, opened_at, expires_at)
            VALUES (\(bind: id), \(bind: accountId), \(bind: workspace.scope), \(bind: sealed), \(bind: Timestamp.format(now)), \(bind: Timestamp.format(until)))
            """).run()
    }

    public struct OperatorAccess: Sendable {
        public var id: String
        public var accountId: String
        public var reason: String
        public var openedAt: Date
        public var expiresAt: Date
    }

    /// The workspace's operator accesses, newest first, with their reasons opened.
    public func operatorAccesses(workspace: Vault, limit: Int) async throws -> [OperatorAccess] {
        var result: [OperatorAccess] = []
        for row in try await db.raw("""
            SELECT id, account_id, reason_sealed, opened_at, expires_at FROM operator_access
            WHERE workspace_id = \(bind: workspace.scope) ORDER BY opened_at DESC LIMIT \(literal: limit)
            """).all() {
            let id = try row.decode(column: "id", as: String.self)
            result.append(OperatorAccess(
                id: id, accountId: try row.decode(column: "account_id", as: String.self),
                reason: try await workspace.open(try row.decode(column: "reason_sealed", as: String.self), table: "operator_access", column: "reason", row: id),
                openedAt: try row.decodeTimestamp("opened_at"), expiresAt: try row.decodeTimestamp("expires_at")
            ))
        }
        return result
    }

    public func hasOpenAccess(accountId: String, workspaceId: String, at now: Date) async throws -> Bool {
        try await db.raw("""
            SELECT 1 AS one FROM operator_access
            WHERE account_id = \(bind: accountId) AND workspace_id = \(bind: workspaceId) AND expires_at > \(bind: Timestamp.format(now))
            """).first() != nil
    }

    private func decode(_ row: any SQLRow) async throws -> Stored {
        let id = try row.decode(column: "id", as: String.self)
        let totp = try row.decode(column: "totp_sealed", as: String?.self)
        return Stored(
            account: Account(
                id: id,
                email: try EmailAddress(try await instance.open(try row.decode(column: "email_sealed", as: String.self), table: "accounts", column: "email", row: id)),
                kind: AccountKind(rawValue: try row.decode(column: "kind", as: String.self)) ?? .member,
                status: AccountStatus(rawValue: try row.decode(column: "status", as: String.self)) ?? .disabled,
                mfaEnrolled: try row.decode(column: "mfa_enrolled_at", as: String?.self) != nil,
                createdAt: try row.decodeTimestamp("created_at"),
                lastSignInAt: try row.decodeOptionalTimestamp("last_sign_in_at"),
                disabledAt: try row.decodeOptionalTimestamp("disabled_at")
            ),
            passwordHash: try row.decode(column: "password_hash", as: String?.self),
            totpSecret: try await totp.asyncMap { try await instance.open($0, table: "accounts", column: "totp", row: id) },
            totpLastStep: try row.decode(column: "totp_last_step", as: Int64?.self)
        )
    }
}

extension Optional {
    func asyncMap<T>(_ transform: (Wrapped) async throws -> T) async rethrows -> T? {
        guard let value = self else { return nil }
        return try await transform(value)
    }
}
