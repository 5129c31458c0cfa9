import Foundation
import Testing
import TidingsApp
import TidingsDomain
import TidingsServices

@Suite("Roles, operators and access reviews")
struct RolesTests {
    @Test("The permission matrix: each role has exactly what it needs")
    func matrix() {
        #expect(Role.viewer.permissions == [.viewWorkspace])
        #expect(!Role.viewer.permits(.exportPersonalData), "viewers cannot export personal data")
        #expect(Role.developer.permits(.manageTemplates) && Role.developer.permits(.manageServers) && Role.developer.permits(.manageAPIKeys))
        #expect(!Role.developer.permits(.readAuditLog) && !Role.developer.permits(.manageMembers) && !Role.developer.permits(.writeContacts))
        #expect(Role.admin.permits(.manageMembers) && !Role.admin.permits(.manageOwners))
        #expect(Role.owner.permissions == Set(Permission.allCases))
    }

    @Test("Each role is refused what it must not do; another workspace is invisible", arguments: TestBackend.all)
    func rolesAreEnforced(backend: TestBackend) async throws {
        let clock = TestClock()
        try await withAPI(backend, clock: clock) { client, tidings in
            let workspace = try await tidings.makeWorkspace(name: "A")
            let other = try await tidings.makeWorkspace(name: "B")
            let owner = try await tidings.enrol(client, clock: clock, workspaceId: workspace.id, email: "owen.owner@example.com", role: .owner)
            let admin = try await tidings.enrol(client, clock: clock, workspaceId: workspace.id, email: "ada.admin@example.com", role: .admin)
            let developer = try await tidings.enrol(client, clock: clock, workspaceId: workspace.id, email: "dev.developer@example.com", role: .developer)
            let viewer = try await tidings.enrol(client, clock: clock, workspaceId: workspace.id, email: "vic.viewer@example.com", role: .viewer)
            let base = "/workspaces/\(workspace.id)"

            for person in [owner, admin, developer, viewer] {
                #expect(try await person.browser.get(base).status == .ok, "\(person.email) sees the workspace")
                #expect(try await person.browser.get("/workspaces/\(other.id)").status == .notFound, "\(person.email) does not see B")
                #expect(try await person.browser.get("/workspaces/\(other.id)/members").status == .notFound)
            }
            for person in [developer, viewer] {
                #expect(try await person.browser.get("\(base)/members").status == .forbidden, "\(person.email)")
                #expect(try await person.browser.get("\(base)/audit").status == .forbidden, "\(person.email)")
            }
            #expect(try await admin.browser.get("\(base)/audit").status == .ok)
            #expect(try await owner.browser.get("\(base)/audit").body.contains("member.added"))

            // Admins manage members, but not owners.
            let page = try await admin.browser.get("\(base)/members")
            #expect(try await admin.browser.post("\(base)/members", ["email": "new.owner@example.com", "role": "owner"], from: page).status == .forbidden)
            #expect(try await admin.browser.post("\(base)/members/\(owner.accountId)/remove", [:], from: page).status == .forbidden)
            #expect(try await admin.browser.post("\(base)/members/\(owner.accountId)/role", ["role": "viewer"], from: page).status == .forbidden)
            // A viewer's forged request to manage members is refused by role, whatever the form says.
            let viewerHome = try await viewer.browser.get(base)
            #expect(try await viewer.browser.post("\(base)/members", ["email": "x.y@example.com", "role": "viewer"], from: viewerHome).status == .forbidden)

            // The last owner cannot be demoted.
            let ownerPage = try await owner.browser.get("\(base)/members")
            #expect(try await owner.browser.post("\(base)/members/\(owner.accountId)/role", ["role": "admin"], from: ownerPage).status == .conflict)
        }
    }

    @Test("Role changes apply on the very next request; removal and disabling end sessions at once", arguments: TestBackend.all)
    func changesTakeEffectAtOnce(backend: TestBackend) async throws {
        let clock = TestClock()
        try await withAPI(backend, clock: clock) { client, tidings in
            let workspace = try await tidings.makeWorkspace()
            let owner = try await tidings.enrol(client, clock: clock, workspaceId: workspace.id, email: "orla.owner@example.com", role: .owner)
            let admin = try await tidings.enrol(client, clock: clock, workspaceId: workspace.id, email: "abe.admin@example.com", role: .admin)
            let base = "/workspaces/\(workspace.id)"
            #expect(try await admin.browser.get("\(base)/members").status == .ok)

            let page = try await owner.browser.get("\(base)/members")
            #expect(try await owner.browser.post("\(base)/members/\(admin.accountId)/role", ["role": "viewer"], from: page).status == .seeOther)
            #expect(try await admin.browser.get("\(base)/members").status == .forbidden, "demoted on the next request")

            #expect(try await owner.browser.post("\(base)/members/\(admin.accountId)/remove", [:], from: page).status == .seeOther)
            #expect(try await admin.browser.get("/").location == "/login", "removal ended the session")

            let again = try await tidings.enrol(client, clock: clock, workspaceId: workspace.id, email: "ben.back@example.com", role: .developer)
            #expect(try await again.browser.get("/").status == .ok)
            try await tidings.accounts.disable(accountId: again.accountId, reason: "left the company", by: .tester)
            #expect(try await again.browser.get("/").location == "/login", "disabling ended the session")
            let login = Browser(client)
            let form = try await login.get("/login")
            #expect(try await login.post("/login", ["email": again.email, "password": again.password], from: form).status == .unauthorized)

            let audit = try await tidings.audit.list(workspaceId: workspace.id, filter: .init(action: "member.*"), cursor: nil, limit: 100)
            #expect(Set(audit.items.map(\.change.action)) == ["member.added", "member.role_changed", "member.removed"])
        }
    }

    @Test("Accounts unused for 90 days are disabled", arguments: TestBackend.all)
    func inactivity(backend: TestBackend) async throws {
        let clock = TestClock()
        try await withAPI(backend, clock: clock) { client, tidings in
            let workspace = try await tidings.makeWorkspace()
            let active = try await tidings.enrol(client, clock: clock, workspaceId: workspace.id, email: "amy.active@example.com", role: .viewer)
            let idle = try await tidings.enrol(client, clock: clock, workspaceId: workspace.id, email: "ivan.idle@example.com", role: .viewer)
            clock.advance(by: 60 * 86400)
            _ = try await signIn(active, client, clock: clock)
            clock.advance(by: 31 * 86400)
            #expect(try await tidings.accounts.disableInactive() == [idle.accountId])
            #expect(try await tidings.accounts.account(email: idle.email)?.status == .disabled)
            #expect(try await tidings.accounts.account(email: active.email)?.status == .active)
        }
    }

    @Test("Operators acknowledge the statement, then open a workspace only with a recorded reason its owners see", arguments: TestBackend.all)
    func operators(backend: TestBackend) async throws {
        let clock = TestClock()
        try await withAPI(backend, clock: clock) { client, tidings in
            let workspace = try await tidings.makeWorkspace()
            let added = try await tidings.accounts.addOperator(email: "opal.operator@example.com", by: .tester)
            let operatorPerson = try await tidings.setUp(client, clock: clock, link: try #require(added.setupLink),
                                                         email: "opal.operator@example.com", password: "steady pylons hum softly")
            let browser = operatorPerson.browser
            #expect(try await browser.get("/").location == "/operator/statement", "the statement comes before first access")
            #expect(try await browser.get("/workspaces/\(workspace.id)").status == .notFound, "no data without a reason")
            let statement = try await browser.get("/operator/statement")
            #expect(statement.body.contains(AccountService.confidentialityStatementVersion))
            #expect(try await browser.post("/operator/statement", [:], from: statement).location == "/")
            let home = try await browser.get("/")
            #expect(home.body.contains(workspace.id))
            let short = try await browser.post("/operator/workspaces/\(workspace.id)/open", ["reason": "look"], from: home)
            #expect(short.status == .unprocessableContent)
            let opened = try await browser.post("/operator/workspaces/\(workspace.id)/open", ["reason": "Ticket 4711: bounce handling broken"], from: home)
            #expect(opened.location == "/workspaces/\(workspace.id)")
            #expect(try await browser.get("/workspaces/\(workspace.id)").status == .ok)
            #expect(try await browser.get("/workspaces/\(workspace.id)/members").status == .forbidden, "operators only view")
            clock.advance(by: 5 * 3600)
            let later = try await signIn(operatorPerson, client, clock: clock)
            #expect(try await later.get("/workspaces/\(workspace.id)").status == .notFound, "access expires after 4 hours")

            // The workspace's owners see who opened it, and why.
            let owner = try await tidings.enrol(client, clock: clock, workspaceId: workspace.id, email: "oona.owner@example.com", role: .owner)
            let auditPage = try await owner.browser.get("/workspaces/\(workspace.id)/audit")
            #expect(auditPage.body.contains("Ticket 4711: bounce handling broken") && auditPage.body.contains(operatorPerson.accountId))
            let seen = try await tidings.audit.list(workspaceId: workspace.id, filter: .init(action: "operator.workspace_opened"), cursor: nil, limit: 10)
            #expect(seen.items.count == 1)
            #expect(seen.items.first?.actor.kind == .operator)
            let acknowledged = try await tidings.audit.list(workspaceId: "instance", filter: .init(action: "operator.statement_acknowledged"), cursor: nil, limit: 10)
            #expect(acknowledged.items.count == 1)
        }
    }

    @Test("An access review lists every account and key with role, MFA and last use, and records the sign-off", arguments: TestBackend.all)
    func accessReview(backend: TestBackend) async throws {
        let clock = TestClock()
        try await withAPI(backend, clock: clock) { client, tidings in
            let workspace = try await tidings.makeWorkspace()
            _ = try await tidings.enrol(client, clock: clock, workspaceId: workspace.id, email: "rita.review@example.com", role: .admin)
            _ = try await tidings.accounts.addMember(workspaceId: workspace.id, email: "pending.person@example.com", role: .viewer, by: .tester)
            let lines = try await tidings.accounts.accessReview(reviewer: "Security lead", actor: .tester)
            let rita = try #require(lines.first { $0.label == "rita.review@example.com" })
            #expect(rita.role == "admin" && rita.mfa == "totp" && rita.lastUsed != nil)
            let pending = try #require(lines.first { $0.label == "pending.person@example.com" })
            #expect(pending.status == "invited" && pending.mfa == "not enrolled" && pending.lastUsed == nil)
            #expect(lines.contains { $0.kind == "api_key" && $0.workspaceId == workspace.id && $0.role == "admin" })
            let signOff = try await tidings.audit.list(workspaceId: "instance", filter: .init(action: "access_review.signed_off"), cursor: nil, limit: 10)
            #expect(signOff.items.first?.change.summary["reviewer"] == .string("Security lead"))
        }
    }
}
