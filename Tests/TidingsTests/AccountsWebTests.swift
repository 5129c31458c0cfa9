import Foundation
import HTTPTypes
import Testing
import TidingsApp
import TidingsDomain
import TidingsServices

/// A person who has set up their account: the browser holding their session, and their factors.
struct Person {
    var browser: Browser
    var email: String
    var password: String
    var secret: String
    var recoveryCodes: [String]
    var accountId: String
}

extension Tidings {
    /// Adds a member (as `tidings user add` does) and walks them through setup and MFA in a browser.
    func enrol(
        _ client: TestClient, clock: TestClock, workspaceId: String, email: String, role: Role,
        password: String = "correct horse battery staple", headers: HTTPFields = [:]
    ) async throws -> Person {
        let added = try await accounts.addMember(workspaceId: workspaceId, email: email, role: role, by: .tester)
        return try await setUp(client, clock: clock, link: try #require(added.setupLink), email: email, password: password, headers: headers)
    }

    func setUp(_ client: TestClient, clock: TestClock, link: String, email: String, password: String, headers: HTTPFields = [:]) async throws -> Person {
        let browser = Browser(client, headers: headers)
        let path = String(link[try #require(link.range(of: "/setup/")).lowerBound...])
        let setup = try await browser.get(path)
        #expect(setup.status == .ok)
        let done = try await browser.post(path, ["password": password], from: setup)
        #expect(done.status == .seeOther && done.location == "/mfa/setup", "\(done.body)")
        let enrol = try await browser.get("/mfa/setup")
        let secret = try #require(Browser.first(#"Key: <code>([A-Z2-7]+)</code>"#, in: enrol.body))
        let confirmed = try await browser.post("/mfa/setup", ["code": Browser.code(secret: secret, at: clock.now)], from: enrol)
        #expect(confirmed.status == .ok, "\(confirmed.body)")
        let codes = Browser.all(#"<li><code>([a-z0-9]{5}-[a-z0-9]{5})</code></li>"#, in: confirmed.body)
        #expect(codes.count == 10)
        let found = try await accounts.account(email: email)
        let account = try #require(found).id
        // The next code must come from a later time step.
        clock.advance(by: 30)
        return Person(browser: browser, email: email, password: password, secret: secret, recoveryCodes: codes, accountId: account)
    }
}

/// Signs in with password and TOTP in a fresh browser.
func signIn(_ person: Person, _ client: TestClient, clock: TestClock) async throws -> Browser {
    let browser = Browser(client, headers: person.browser.headers)
    let page = try await browser.get("/login")
    let first = try await browser.post("/login", ["email": person.email, "password": person.password], from: page)
    #expect(first.status == .seeOther && first.location == "/login/mfa", "\(first.status) \(first.body)")
    let mfa = try await browser.get("/login/mfa")
    let second = try await browser.post("/login/mfa", ["code": Browser.code(secret: person.secret, at: clock.now)], from: mfa)
    #expect(second.status == .seeOther && second.location == "/", "\(second.body)")
    clock.advance(by: 30)
    return browser
}

@Suite("Accounts: setup, sign-in and MFA")
struct AccountsWebTests {
    @Test("A new member sets a password through the single-use link and must enrol MFA before anything else", arguments: TestBackend.all)
    func setupAndEnrolment(backend: TestBackend) async throws {
        let clock = TestClock()
        try await withAPI(backend, clock: clock) { client, tidings in
            let workspace = try await tidings.makeWorkspace()
            let added = try await tidings.accounts.addMember(workspaceId: workspace.id, email: "nora.new@example.com", role: .developer, by: .tester)
            let link = try #require(added.setupLink)
            #expect(link.hasPrefix("https://localhost:8443/setup/"), "links use the public URL, HTTPS by default")
            let path = String(link[try #require(link.range(of: "/setup/")).lowerBound...])
            let browser = Browser(client)
            let form = try await browser.get(path)
            #expect(form.status == .ok)
            #expect(form.headers[.contentSecurityPolicy]?.contains("default-src 'none'") == true)
            for (password, reason) in [("Xq7#shrt", "at least 12"), ("password1234", "too common"), ("nora.new@example.com!!", "e-mail address")] {
                let refused = try await browser.post(path, ["password": password], from: form)
                #expect(refused.status == .unprocessableContent)
                #expect(refused.body.contains(reason), "\(refused.body)")
                #expect(!refused.body.contains(password), "the page never repeats the password")
            }
            let done = try await browser.post(path, ["password": "quiet harbour lanterns glow"], from: form)
            #expect(done.status == .seeOther)
            let cookie = try #require(done.headers[values: .setCookie].first { $0.hasPrefix("tidings_session=") })
            for attribute in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/"] { #expect(cookie.contains(attribute)) }
            // Nothing is reachable before MFA is enrolled.
            for page in ["/", "/workspaces/\(workspace.id)", "/login/mfa"] {
                let reply = try await browser.get(page)
                #expect(reply.status == .seeOther && reply.location == "/mfa/setup", "\(page)")
            }
            #expect(try await browser.get(path).status == .notFound, "the link works once")
            let enrol = try await browser.get("/mfa/setup")
            let secret = try #require(Browser.first(#"Key: <code>([A-Z2-7]+)</code>"#, in: enrol.body))
            #expect(secret.count == 32, "160-bit secret")
            #expect(enrol.body.contains("otpauth://totp/"))
            let wrong = try await browser.post("/mfa/setup", ["code": "000000"], from: enrol)
            #expect(wrong.status == .unprocessableContent)
            let sessionBefore = browser.cookies["tidings_session"]
            let confirmed = try await browser.post("/mfa/setup", ["code": Browser.code(secret: secret, at: clock.now)], from: enrol)
            #expect(confirmed.status == .ok)
            #expect(Browser.all(#"<li><code>([a-z0-9]{5}-[a-z0-9]{5})</code></li>"#, in: confirmed.body).count == 10)
            #expect(browser.cookies["tidings_session"] != sessionBefore, "the session is rotated once MFA is passed")
            let home = try await browser.get("/")
            #expect(home.status == .ok && home.body.contains(workspace.id))
        }
    }

    @Test("Sign-in needs password and TOTP; errors are generic; a code is never accepted twice; recovery codes work once", arguments: TestBackend.all)
    func signInWithMFA(backend: TestBackend) async throws {
        let clock = TestClock()
        try await withAPI(backend, clock: clock) { client, tidings in
            let workspace = try await tidings.makeWorkspace()
            let person = try await tidings.enrol(client, clock: clock, workspaceId: workspace.id, email: "sam.sign@example.com", role: .viewer)
            let browser = Browser(client)
            let page = try await browser.get("/login")
            let wrongPassword = try await browser.post("/login", ["email": person.email, "password": "not the password at all"], from: page)
            let unknown = try await browser.post("/login", ["email": "nobody.here@example.com", "password": "not the password at all"], from: page)
            #expect(wrongPassword.status == .unauthorized && unknown.status == .unauthorized)
            #expect(wrongPassword.body == unknown.body, "the page does not tell which was wrong")

            let first = try await browser.post("/login", ["email": person.email, "password": person.password], from: page)
            #expect(first.location == "/login/mfa")
            #expect(try await browser.get("/").location == "/login/mfa", "the password alone reaches nothing")
            let mfa = try await browser.get("/login/mfa")
            let code = Browser.code(secret: person.secret, at: clock.now)
            #expect(try await browser.post("/login/mfa", ["code": code], from: mfa).location == "/")
            #expect(try await browser.get("/").status == .ok)

            // The same code, in the same 30-second window, in another sign-in: refused.
            let other = Browser(client)
            let otherPage = try await other.get("/login")
            _ = try await other.post("/login", ["email": person.email, "password": person.password], from: otherPage)
            let otherMFA = try await other.get("/login/mfa")
            #expect(try await other.post("/login/mfa", ["code": code], from: otherMFA).status == .unprocessableContent)
            // A recovery code works instead, once.
            let recovery = person.recoveryCodes[3].uppercased()
            #expect(try await other.post("/login/mfa", ["code": recovery], from: otherMFA).location == "/")
            let third = Browser(client)
            _ = try await third.post("/login", ["email": person.email, "password": person.password], from: try await third.get("/login"))
            let thirdMFA = try await third.get("/login/mfa")
            #expect(try await third.post("/login/mfa", ["code": recovery], from: thirdMFA).status == .unprocessableContent)

            let audit = try await tidings.audit.list(workspaceId: "instance", filter: .init(action: "account.*"), cursor: nil, limit: 100)
            let actions = audit.items.map(\.change.action)
            #expect(actions.contains("account.signed_in") && actions.contains("account.sign_in_failed") && actions.contains("account.mfa_failed"))
        }
    }

    @Test("Repeated failures slow sign-in down per account and per network, with growing delays", arguments: TestBackend.all)
    func throttling(backend: TestBackend) async throws {
        let clock = TestClock()
        try await withAPI(backend, clock: clock) { client, tidings in
            let workspace = try await tidings.makeWorkspace()
            let person = try await tidings.enrol(client, clock: clock, workspaceId: workspace.id, email: "tom.throttle@example.com", role: .viewer)
            let browser = Browser(client)
            let page = try await browser.get("/login")
            for _ in 0..<5 {
                #expect(try await browser.post("/login", ["email": person.email, "password": "guess guess guess"], from: page).status == .unauthorized)
            }
            #expect(try await browser.post("/login", ["email": person.email, "password": "guess guess guess"], from: page).status == .unauthorized)
            let blocked = try await browser.post("/login", ["email": person.email, "password": person.password], from: page)
            #expect(blocked.status == .tooManyRequests, "even the right password waits")
            #expect(blocked.headers[.retryAfter] == "1")
            clock.advance(by: 2)
            #expect(try await browser.post("/login", ["email": person.email, "password": "guess guess guess"], from: page).status == .unauthorized)
            let longer = try await browser.post("/login", ["email": person.email, "password": person.password], from: page)
            #expect(longer.headers[.retryAfter] == "2", "the delay doubles")
            clock.advance(by: 3)
            #expect(try await browser.post("/login", ["email": person.email, "password": person.password], from: page).location == "/login/mfa")
        }
    }

    @Test("Many failures from one network slow down sign-in for every account tried from it", arguments: TestBackend.all)
    func networkThrottling(backend: TestBackend) async throws {
        let clock = TestClock()
        try await withAPI(backend, clock: clock) { client, tidings in
            let browser = Browser(client)
            let page = try await browser.get("/login")
            for index in 0..<20 {
                let reply = try await browser.post("/login", ["email": "guess\(index)@example.com", "password": "guess guess guess"], from: page)
                #expect(reply.status == .unauthorized)
            }
            #expect(try await browser.post("/login", ["email": "guess20@example.com", "password": "guess guess guess"], from: page).status == .unauthorized)
            let blocked = try await browser.post("/login", ["email": "someone.new@example.com", "password": "guess guess guess"], from: page)
            #expect(blocked.status == .tooManyRequests)
        }
    }

    @Test("Forms without the anti-forgery token are refused", arguments: TestBackend.all)
    func csrf(backend: TestBackend) async throws {
        let clock = TestClock()
        try await withAPI(backend, clock: clock) { client, tidings in
            let workspace = try await tidings.makeWorkspace()
            let owner = try await tidings.enrol(client, clock: clock, workspaceId: workspace.id, email: "olga.owner@example.com", role: .owner)
            let browser = Browser(client)
            _ = try await browser.get("/login")
            #expect(try await browser.post("/login", ["email": owner.email, "password": owner.password], csrf: "forged").status == .forbidden)
            #expect(try await browser.post("/login", ["email": owner.email, "password": owner.password]).status == .forbidden)
            let members = "/workspaces/\(workspace.id)/members"
            let forged = try await owner.browser.post(members, ["email": "mallory@example.com", "role": "admin"], csrf: "0000")
            #expect(forged.status == .forbidden)
            #expect(try await tidings.accounts.members(workspaceId: workspace.id).count == 1, "nothing was added")
            let page = try await owner.browser.get(members)
            #expect(try await owner.browser.post(members, ["email": "mallory@example.com", "role": "viewer"], from: page).status == .created)
        }
    }

    @Test("Sessions end after 30 idle minutes and 12 hours in all; signing out ends them", arguments: TestBackend.all)
    func sessionLifetimes(backend: TestBackend) async throws {
        let clock = TestClock()
        try await withAPI(backend, clock: clock) { client, tidings in
            let workspace = try await tidings.makeWorkspace()
            let person = try await tidings.enrol(client, clock: clock, workspaceId: workspace.id, email: "ida.idle@example.com", role: .viewer)
            clock.advance(by: 31 * 60)
            #expect(try await person.browser.get("/").location == "/login", "idle too long")

            let active = try await signIn(person, client, clock: clock)
            for _ in 0..<35 {
                clock.advance(by: 20 * 60)
                #expect(try await active.get("/").status == .ok)
            }
            clock.advance(by: 20 * 60)
            #expect(try await active.get("/").location == "/login", "12 hours after sign-in, however active")

            let leaving = try await signIn(person, client, clock: clock)
            let home = try await leaving.get("/")
            let session = try #require(leaving.cookies["tidings_session"])
            #expect(try await leaving.post("/logout", [:], from: home).location == "/login")
            #expect(try await tidings.accounts.session(token: session) == nil, "the session is gone on the server")
        }
    }
}
