import Foundation
import Hummingbird
import TidingsDomain
import TidingsServices
import TidingsStorage

/// The dashboard's sign-in pages and the first workspace pages: setting up an account,
/// signing in with password and TOTP, enrolling MFA, managing members, the audit log,
/// and the operator's confidentiality statement and recorded reasons.
///
/// Every state-changing form carries an anti-forgery token; cookies are `Secure;
/// HttpOnly; SameSite=Strict`; MFA comes before anything else is reachable.
struct WebController {
    let services: APIServices
    var accounts: AccountService { services.accounts }

    static let sessionCookie = "tidings_session"
    static let csrfCookie = "tidings_csrf"

    func register(on router: Router<TidingsRequestContext>, table: RouteTable) {
        func add(_ method: HTTPRequest.Method, _ path: String, _ handler: @escaping @Sendable (Request, TidingsRequestContext) async throws -> Response) {
            table.add(method, path)
            router.on(APIRoutes.routerPath(path), method: method) { request, context in
                do {
                    // Accounts span workspaces; each workspace page checks the member's role first.
                    return try await TenantScope.with(.instance) { try await handler(request, context) }
                } catch let redirect as Redirect {
                    return redirect.response
                } catch let error as WebError {
                    return HTML.page("Problem", status: error.status, HTML.notice(error.message) + "<p><a href=\"/\">Back</a></p>")
                } catch let error as DomainError {
                    let status = APIError(error).status
                    return HTML.page("Problem", status: status, HTML.notice(error.message) + "<p><a href=\"/\">Back</a></p>")
                }
            }
        }
        add(.get, "/login", loginPage)
        add(.post, "/login", login)
        add(.get, "/login/mfa", mfaPage)
        add(.post, "/login/mfa", verifyMFA)
        add(.get, "/mfa/setup", enrolPage)
        add(.post, "/mfa/setup", confirmEnrolment)
        add(.get, "/setup/{token}", setupPage)
        add(.post, "/setup/{token}", completeSetup)
        add(.post, "/logout", logout)
        add(.get, "/", home)
        add(.get, "/operator/statement", statementPage)
        add(.post, "/operator/statement", acknowledge)
        add(.post, "/operator/workspaces/{id}/open", openWorkspace)
        add(.get, "/workspaces/{id}", workspacePage)
        add(.get, "/workspaces/{id}/members", membersPage)
        add(.post, "/workspaces/{id}/members", addMember)
        add(.post, "/workspaces/{id}/members/{account}/role", changeRole)
        add(.post, "/workspaces/{id}/members/{account}/remove", removeMember)
        add(.get, "/workspaces/{id}/audit", auditPage)
    }

    // MARK: Cookies and forms

    func sessionCookie(_ token: String) -> String {
        "\(Self.sessionCookie)=\(token); Path=/; Max-Age=\(Int(services.accountSettings.sessionLifetime)); Secure; HttpOnly; SameSite=Strict"
    }

    static let clearedSession = "\(sessionCookie)=; Path=/; Max-Age=0; Secure; HttpOnly; SameSite=Strict"

    /// The pre-session anti-forgery value (double submit): the cookie's value, or a new one to set.
    func preSessionToken(_ request: Request) -> (token: String, cookie: String?) {
        if let existing = request.cookies[Self.csrfCookie]?.value, existing.count >= 32 { return (existing, nil) }
        let token = accounts.newFormToken()
        return (token, "\(Self.csrfCookie)=\(token); Path=/; Secure; HttpOnly; SameSite=Strict")
    }

    func checkPreSession(_ request: Request, _ form: FormBody) throws {
        guard let cookie = request.cookies[Self.csrfCookie]?.value, cookie.count >= 32, form["_csrf"] == cookie else {
            throw WebError(.forbidden, "The form expired or did not come from this site. Reload the page and try again.")
        }
    }

    func checkSession(_ signedIn: AccountService.SignedIn, _ form: FormBody) throws {
        guard form["_csrf"] == accounts.csrfToken(forSession: signedIn.token) else {
            throw WebError(.forbidden, "The form expired or did not come from this site. Reload the page and try again.")
        }
    }

    func actor(_ context: TidingsRequestContext, _ account: Account? = nil) -> AuditActor {
        AuditActor(
            kind: account?.kind == .operator ? .operator : .user, id: account?.id ?? "anonymous",
            network: context.clientNetwork, userAgent: context.userAgent
        )
    }

    /// Sends the person elsewhere: to sign in, or to the step their session is at.
    struct Redirect: Error {
        var response: Response
    }

    /// The session of the request, which must be at `stage`; otherwise a `Redirect` to the
    /// sign-in page or to the step the session is at (MFA before anything else).
    func signedIn(_ request: Request, stage: AccountRepository.SessionStage = .complete) async throws -> AccountService.SignedIn {
        guard let token = request.cookies[Self.sessionCookie]?.value, let signedIn = try await accounts.session(token: token) else {
            throw Redirect(response: HTML.redirect("/login", cookies: [Self.clearedSession]))
        }
        guard signedIn.stage == stage else {
            switch signedIn.stage {
            case .mfaEnrolment: throw Redirect(response: HTML.redirect("/mfa/setup"))
            case .mfaRequired: throw Redirect(response: HTML.redirect("/login/mfa"))
            case .complete: throw Redirect(response: HTML.redirect("/"))
            }
        }
        return signedIn
    }

    // MARK: Sign-in

    @Sendable func loginPage(_ request: Request, context: TidingsRequestContext) async throws -> Response {
        let (token, cookie) = preSessionToken(request)
        return HTML.page("Sign in", cookies: cookie.map { [$0] } ?? [], HTML.form(action: "/login", csrf: token, submit: "Sign in", """
            <p><label>Email <input type="email" name="email" autocomplete="username" required></label></p>
            <p><label>Password <input type="password" name="password" autocomplete="current-password" required></label></p>
            """))
    }

    @Sendable func login(_ request: Request, context: TidingsRequestContext) async throws -> Response {
        let form = try await FormBody.read(request)
        try checkPreSession(request, form)
        let result = try await accounts.signIn(email: form["email"] ?? "", password: form["password"] ?? "", actor: actor(context))
        switch result {
        case .session(let token, let stage):
            return HTML.redirect(stage == .mfaEnrolment ? "/mfa/setup" : "/login/mfa", cookies: [sessionCookie(token)])
        case .failed:
            let (token, _) = preSessionToken(request)
            return HTML.page("Sign in", status: .unauthorized, HTML.notice("The email address or password is not right.")
                + HTML.form(action: "/login", csrf: token, submit: "Sign in", """
                    <p><label>Email <input type="email" name="email" required></label></p>
                    <p><label>Password <input type="password" name="password" required></label></p>
                    """))
        case .throttled(let seconds):
            var response = HTML.page("Sign in", status: .tooManyRequests, HTML.notice("Too many attempts. Try again in \(seconds) seconds."))
            response.headers[.retryAfter] = String(seconds)
            return response
        }
    }

    @Sendable func mfaPage(_ request: Request, context: TidingsRequestContext) async throws -> Response {
        let signedIn = try await signedIn(request, stage: .mfaRequired)
        return HTML.page("Two-step verification", HTML.form(action: "/login/mfa", csrf: accounts.csrfToken(forSession: signedIn.token), submit: "Verify", """
            <p><label>Code from your authenticator app, or a recovery code
            <input name="code" autocomplete="one-time-code" required></label></p>
            """))
    }

    @Sendable func verifyMFA(_ request: Request, context: TidingsRequestContext) async throws -> Response {
        let signedIn = try await signedIn(request, stage: .mfaRequired)
        let form = try await FormBody.read(request)
        try checkSession(signedIn, form)
        let token = try await accounts.verifySecondFactor(signedIn, code: form["code"] ?? "", actor: actor(context, signedIn.account))
        return HTML.redirect("/", cookies: [sessionCookie(token)])
    }

    @Sendable func enrolPage(_ request: Request, context: TidingsRequestContext) async throws -> Response {
        let signedIn = try await signedIn(request, stage: .mfaEnrolment)
        let (secret, uri) = try await accounts.beginEnrolment(signedIn)
        return HTML.page("Set up two-step verification", """
            <p>Two-step verification is required for every account. Add this key to an authenticator app \
            (or open the link on the device that has the app), then enter the code it shows.</p>
            <p>Key: <code>\(HTML.escape(secret))</code></p>
            <p><a href="\(HTML.escape(uri))">\(HTML.escape(uri))</a></p>
            """ + HTML.form(action: "/mfa/setup", csrf: accounts.csrfToken(forSession: signedIn.token), submit: "Confirm", """
            <p><label>Code <input name="code" inputmode="numeric" autocomplete="one-time-code" required></label></p>
            """))
    }

    @Sendable func confirmEnrolment(_ request: Request, context: TidingsRequestContext) async throws -> Response {
        let signedIn = try await signedIn(request, stage: .mfaEnrolment)
        let form = try await FormBody.read(request)
        try checkSession(signedIn, form)
        let (token, codes) = try await accounts.confirmEnrolment(signedIn, code: form["code"] ?? "", actor: actor(context, signedIn.account))
        let list = codes.map { "<li><code>\(HTML.escape($0))</code></li>" }.joined()
        return HTML.page("Recovery codes", cookies: [sessionCookie(token)], """
            <p>Two-step verification is on. Keep these recovery codes somewhere safe: each works once \
            if you lose your device. They are not shown again.</p>
            <ul>\(list)</ul>
            <p><a href="/">Continue</a></p>
            """)
    }

    @Sendable func setupPage(_ request: Request, context: TidingsRequestContext) async throws -> Response {
        let token = try request.pathParameter("token", context: context)
        guard let account = try await accounts.setupAccount(token: token) else {
            throw WebError(.notFound, "This setup link is invalid, used or expired. Ask for a new one.")
        }
        let (csrf, cookie) = preSessionToken(request)
        return HTML.page("Set your password", cookies: cookie.map { [$0] } ?? [], setupForm(token: token, account: account, csrf: csrf))
    }

    func setupForm(token: String, account: Account, csrf: String) -> String {
        """
        <p>Account: \(HTML.escape(account.email.value))</p>
        <p>Use at least 12 characters; a phrase of several words works well. After this you set up two-step verification.</p>
        """ + HTML.form(action: "/setup/\(token)", csrf: csrf, submit: "Set password", """
        <p><label>Password <input type="password" name="password" autocomplete="new-password" minlength="12" required></label></p>
        """)
    }

    @Sendable func completeSetup(_ request: Request, context: TidingsRequestContext) async throws -> Response {
        let token = try request.pathParameter("token", context: context)
        let form = try await FormBody.read(request)
        try checkPreSession(request, form)
        let session: String
        do {
            session = try await accounts.completeSetup(token: token, password: form["password"] ?? "", actor: actor(context))
        } catch let error as DomainError where error.field == "password" {
            // Ask again on the same page, saying what was wrong (never echoing the password).
            guard let account = try await accounts.setupAccount(token: token) else { throw error }
            return HTML.page("Set your password", status: .unprocessableContent,
                             HTML.notice(error.message) + setupForm(token: token, account: account, csrf: preSessionToken(request).token))
        }
        return HTML.redirect("/mfa/setup", cookies: [sessionCookie(session)])
    }

    @Sendable func logout(_ request: Request, context: TidingsRequestContext) async throws -> Response {
        if let token = request.cookies[Self.sessionCookie]?.value, let signedIn = try await accounts.session(token: token) {
            let form = try await FormBody.read(request)
            try checkSession(signedIn, form)
            try await accounts.signOut(token: token)
        }
        return HTML.redirect("/login", cookies: [Self.clearedSession])
    }

    // MARK: Signed-in pages

    @Sendable func home(_ request: Request, context: TidingsRequestContext) async throws -> Response {
        let signedIn = try await signedIn(request)
        let csrf = accounts.csrfToken(forSession: signedIn.token)
        let logout = HTML.form(action: "/logout", csrf: csrf, submit: "Sign out")
        if signedIn.account.kind == .operator {
            guard try await accounts.hasAcknowledgedStatement(signedIn.account) else { return HTML.redirect("/operator/statement") }
            let workspaces = try await services.listWorkspaces()
            let rows = workspaces.map { workspace in
                "<li>\(HTML.escape(workspace.name)) (<code>\(HTML.escape(workspace.id))</code>)"
                    + HTML.form(action: "/operator/workspaces/\(workspace.id)/open", csrf: csrf, submit: "Open with this reason",
                                "<label>Reason <input name=\"reason\" minlength=\"10\" required></label>") + "</li>"
            }.joined()
            return HTML.page("Operator", "<p>Opening a workspace records your reason in its audit log.</p><ul>\(rows)</ul>" + logout)
        }
        let memberships = try await accounts.memberships(of: signedIn.account)
        let rows = memberships.map {
            "<li><a href=\"/workspaces/\(HTML.escape($0.workspaceId))\">\(HTML.escape($0.workspaceId))</a> — \(HTML.escape($0.role.rawValue))</li>"
        }.joined()
        return HTML.page("Your workspaces", (rows.isEmpty ? "<p>You are not a member of any workspace.</p>" : "<ul>\(rows)</ul>") + logout)
    }

    @Sendable func statementPage(_ request: Request, context: TidingsRequestContext) async throws -> Response {
        let signedIn = try await signedIn(request)
        guard signedIn.account.kind == .operator else { throw WebError(.forbidden, "Only operators acknowledge the confidentiality statement.") }
        return HTML.page("Confidentiality statement", """
            <p>Version \(HTML.escape(AccountService.confidentialityStatementVersion))</p>
            <blockquote>\(HTML.escape(AccountService.confidentialityStatement))</blockquote>
            """ + HTML.form(action: "/operator/statement", csrf: accounts.csrfToken(forSession: signedIn.token), submit: "I acknowledge this statement"))
    }

    @Sendable func acknowledge(_ request: Request, context: TidingsRequestContext) async throws -> Response {
        let signedIn = try await signedIn(request)
        try checkSession(signedIn, try await FormBody.read(request))
        try await accounts.acknowledgeStatement(signedIn.account, actor: actor(context, signedIn.account))
        return HTML.redirect("/")
    }

    @Sendable func openWorkspace(_ request: Request, context: TidingsRequestContext) async throws -> Response {
        let signedIn = try await signedIn(request)
        let form = try await FormBody.read(request)
        try checkSession(signedIn, form)
        let workspaceId = try request.pathParameter("id", context: context)
        try await accounts.openWorkspace(signedIn.account, workspaceId: workspaceId, reason: try form.required("reason", label: "A reason"),
                                         actor: actor(context, signedIn.account))
        return HTML.redirect("/workspaces/\(workspaceId)")
    }

    @Sendable func workspacePage(_ request: Request, context: TidingsRequestContext) async throws -> Response {
        let signedIn = try await signedIn(request)
        let workspaceId = try request.pathParameter("id", context: context)
        let role = try await accounts.authorize(signedIn.account, workspaceId: workspaceId, .viewWorkspace)
        var links: [String] = []
        if role.permits(.manageMembers) { links.append("<li><a href=\"/workspaces/\(HTML.escape(workspaceId))/members\">Members</a></li>") }
        if role.permits(.readAuditLog) { links.append("<li><a href=\"/workspaces/\(HTML.escape(workspaceId))/audit\">Audit log</a></li>") }
        return HTML.page("Workspace", "<p><code>\(HTML.escape(workspaceId))</code> — your role: \(HTML.escape(role.rawValue))</p><ul>\(links.joined())</ul>")
    }

    @Sendable func membersPage(_ request: Request, context: TidingsRequestContext) async throws -> Response {
        let signedIn = try await signedIn(request)
        let workspaceId = try request.pathParameter("id", context: context)
        try await accounts.authorize(signedIn.account, workspaceId: workspaceId, .manageMembers)
        return try await renderMembers(workspaceId: workspaceId, signedIn: signedIn, notice: nil)
    }

    func renderMembers(workspaceId: String, signedIn: AccountService.SignedIn, notice: String?, status: HTTPResponse.Status = .ok) async throws -> Response {
        let csrf = accounts.csrfToken(forSession: signedIn.token)
        let base = "/workspaces/\(workspaceId)/members"
        let roles = Role.allCases.reversed().map { "<option>\($0.rawValue)</option>" }.joined()
        let rows = try await accounts.members(workspaceId: workspaceId).map { member in
            let id = HTML.escape(member.account.id)
            return "<tr><td>\(HTML.escape(member.account.email.value))</td><td>\(HTML.escape(member.role.rawValue))</td>"
                + "<td>\(HTML.escape(member.account.status.rawValue))</td><td>\(member.account.mfaEnrolled ? "on" : "not yet")</td><td>"
                + HTML.form(action: "\(base)/\(id)/role", csrf: csrf, submit: "Change role", "<select name=\"role\">\(roles)</select>")
                + HTML.form(action: "\(base)/\(id)/remove", csrf: csrf, submit: "Remove") + "</td></tr>"
        }.joined()
        return HTML.page("Members", status: status, (notice.map(HTML.notice) ?? "") + """
            <table><thead><tr><th>Email</th><th>Role</th><th>Status</th><th>MFA</th><th></th></tr></thead><tbody>\(rows)</tbody></table>
            <h2>Add a member</h2>
            """ + HTML.form(action: base, csrf: csrf, submit: "Add member", """
            <p><label>Email <input type="email" name="email" required></label></p>
            <p><label>Role <select name="role">\(roles)</select></label></p>
            """))
    }

    @Sendable func addMember(_ request: Request, context: TidingsRequestContext) async throws -> Response {
        let signedIn = try await signedIn(request)
        let workspaceId = try request.pathParameter("id", context: context)
        let form = try await FormBody.read(request)
        try checkSession(signedIn, form)
        let managerRole = try await accounts.authorize(signedIn.account, workspaceId: workspaceId, .manageMembers)
        let role = try Role.parse(try form.required("role", label: "A role"))
        if role == .owner, !managerRole.permits(.manageOwners) { throw WebError(.forbidden, "Only owners add owners.") }
        let added = try await accounts.addMember(workspaceId: workspaceId, email: try form.required("email", label: "An email address"),
                                                 role: role, by: actor(context, signedIn.account))
        let notice = added.setupLink.map { "Added. Send this single-use setup link to the person (it expires in 72 hours): \($0)" }
            ?? "Added. The person can sign in with their existing account."
        return try await renderMembers(workspaceId: workspaceId, signedIn: signedIn, notice: notice, status: .created)
    }

    @Sendable func changeRole(_ request: Request, context: TidingsRequestContext) async throws -> Response {
        let signedIn = try await signedIn(request)
        let workspaceId = try request.pathParameter("id", context: context)
        let form = try await FormBody.read(request)
        try checkSession(signedIn, form)
        try await accounts.changeRole(
            workspaceId: workspaceId, accountId: try request.pathParameter("account", context: context),
            to: try Role.parse(try form.required("role", label: "A role")), by: signedIn.account, actor: actor(context, signedIn.account)
        )
        return HTML.redirect("/workspaces/\(workspaceId)/members")
    }

    @Sendable func removeMember(_ request: Request, context: TidingsRequestContext) async throws -> Response {
        let signedIn = try await signedIn(request)
        let workspaceId = try request.pathParameter("id", context: context)
        try checkSession(signedIn, try await FormBody.read(request))
        try await accounts.removeMember(
            workspaceId: workspaceId, accountId: try request.pathParameter("account", context: context),
            by: signedIn.account, actor: actor(context, signedIn.account)
        )
        return HTML.redirect("/workspaces/\(workspaceId)/members")
    }

    @Sendable func auditPage(_ request: Request, context: TidingsRequestContext) async throws -> Response {
        let signedIn = try await signedIn(request)
        let workspaceId = try request.pathParameter("id", context: context)
        try await accounts.authorize(signedIn.account, workspaceId: workspaceId, .readAuditLog)
        let page = try await services.audit.list(workspaceId: workspaceId, filter: .init(), cursor: nil, limit: 100)
        let rows = page.items.map { event in
            "<tr><td>\(HTML.escape(Timestamp.format(event.occurredAt)))</td><td>\(HTML.escape(event.actor.kind.rawValue)) \(HTML.escape(event.actor.id))</td>"
                + "<td>\(HTML.escape(event.change.action))</td><td>\(HTML.escape(event.change.targetId ?? ""))</td></tr>"
        }.joined()
        let accesses = try await accounts.operatorAccesses(workspaceId: workspaceId, viewer: signedIn.account).map { access in
            "<tr><td>\(HTML.escape(Timestamp.format(access.openedAt)))</td><td>\(HTML.escape(access.accountId))</td>"
                + "<td>\(HTML.escape(access.reason))</td><td>\(HTML.escape(Timestamp.format(access.expiresAt)))</td></tr>"
        }.joined()
        return HTML.page("Audit log", """
            <h2>Operator access</h2>
            <table><thead><tr><th>Opened</th><th>Operator</th><th>Reason</th><th>Until</th></tr></thead><tbody>\(accesses)</tbody></table>
            <h2>Events</h2>
            <table><thead><tr><th>Time</th><th>Actor</th><th>Action</th><th>Target</th></tr></thead><tbody>\(rows)</tbody></table>
            """)
    }
}

