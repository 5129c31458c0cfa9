import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import TidingsDomain
import TidingsServices

/// The hosted preference page that `{{ unsubscribe_link }}` and `List-Unsubscribe` lead to,
/// for the contact who received the mail: no sign-in, no cookies, no JavaScript, nothing
/// loaded from elsewhere.
///
/// - `GET /u/{token}`: the contact's topics as checkboxes, "unsubscribe from everything",
///   and a save button; `POST /u/{token}` saves and confirms.
/// - `POST /u/{token}/one-click`: RFC 8058 one-click unsubscribe, as mailbox providers send
///   it (`List-Unsubscribe=One-Click`); `GET` there only shows the page, since mail scanners
///   fetch links.
///
/// The token in the URL is the capability (see `UnsubscribeToken`): it is unforgeable, so a
/// cross-site form cannot target a contact without already holding the link, and a per-form
/// nonce would add nothing. Every link that is not genuine answers the same plain 404.
struct PreferencePagesController {
    let services: APIServices

    static let oneClickBodyLimit = 16 * 1024

    func register(on router: Router<TidingsRequestContext>, table: RouteTable) {
        func add(_ method: HTTPRequest.Method, _ path: String, _ handler: @escaping @Sendable (Request, TidingsRequestContext) async throws -> Response) {
            table.add(method, path)
            router.on(APIRoutes.routerPath(path), method: method) { request, context in
                do {
                    return try await handler(request, context)
                } catch let error as WebError {
                    return Self.page("Problem", status: error.status, HTML.notice(error.message))
                }
            }
        }
        add(.get, "/u/{token}", show)
        add(.post, "/u/{token}", save)
        add(.get, "/u/{token}/one-click", show)
        add(.post, "/u/{token}/one-click", oneClick)
    }

    func actor(_ context: TidingsRequestContext, _ via: SubscriptionChange.Channel) -> AuditActor {
        // The contact acts through the link: the audit log names the channel, its network and agent.
        AuditActor(kind: .system, id: via.rawValue, network: context.clientNetwork, userAgent: context.userAgent)
    }

    func token(_ request: Request, _ context: TidingsRequestContext) -> String {
        context.parameters.get("token") ?? ""
    }

    // MARK: Handlers

    @Sendable func show(_ request: Request, context: TidingsRequestContext) async throws -> Response {
        let token = token(request, context)
        guard let preferences = try await services.subscriptions.preferences(token: token) else { return Self.notFound() }
        return Self.page("Email preferences", Self.form(preferences, token: token))
    }

    @Sendable func save(_ request: Request, context: TidingsRequestContext) async throws -> Response {
        let token = token(request, context)
        let form = try await FormBody.read(request)
        let shown = Set((form["topics"] ?? "").split(separator: ",").map(String.init))
        let subscribed = Set(shown.filter { form["topic.\($0)"] != nil })
        guard let preferences = try await services.subscriptions.savePreferences(
            token: token, unsubscribeFromAll: form["unsubscribe_all"] != nil, shownTopics: shown, subscribedTopics: subscribed,
            actor: actor(context, .preferencePage)
        ) else { return Self.notFound() }
        return Self.page("Preferences saved", Self.confirmation(preferences, token: token))
    }

    @Sendable func oneClick(_ request: Request, context: TidingsRequestContext) async throws -> Response {
        let token = token(request, context)
        let body: ByteBuffer
        do {
            body = try await request.body.collect(upTo: Self.oneClickBodyLimit)
        } catch {
            return Self.text("The request body is too large.", status: .contentTooLarge)
        }
        guard Self.isOneClick(body: String(buffer: body), contentType: request.headers[.contentType]) else {
            return Self.text("Send List-Unsubscribe=One-Click (RFC 8058), or open the link in a browser.", status: .badRequest)
        }
        guard let result = try await services.subscriptions.oneClick(token: token, actor: actor(context, .oneClick)) else {
            return Self.notFound()
        }
        switch result {
        case .leftTopic(let topic): return Self.text("Unsubscribed from \(topic.name).")
        case .unsubscribedFromAll: return Self.text("Unsubscribed.")
        }
    }

    /// Whether the body carries `List-Unsubscribe=One-Click`, as a urlencoded form (what RFC
    /// 8058 names) or a multipart one (what some providers send).
    static func isOneClick(body: String, contentType: String?) -> Bool {
        let type = contentType?.lowercased() ?? ""
        if type.hasPrefix("multipart/form-data") {
            guard let boundary = contentType?.split(separator: ";").lazy
                .map({ $0.trimmingCharacters(in: .whitespaces) })
                .first(where: { $0.lowercased().hasPrefix("boundary=") })?
                .dropFirst("boundary=".count).trimmingCharacters(in: CharacterSet(charactersIn: "\"")),
                !boundary.isEmpty else { return false }
            for part in body.components(separatedBy: "--" + boundary) {
                guard let split = part.range(of: "\r\n\r\n") ?? part.range(of: "\n\n") else { continue }
                let headers = part[..<split.lowerBound].lowercased()
                let value = part[split.upperBound...].trimmingCharacters(in: .whitespacesAndNewlines)
                if headers.contains("name=\"list-unsubscribe\""), value == "One-Click" { return true }
            }
            return false
        }
        guard type.isEmpty || type.hasPrefix("application/x-www-form-urlencoded") else { return false }
        return FormBody.parse(body.trimmingCharacters(in: .whitespacesAndNewlines))["List-Unsubscribe"] == "One-Click"
    }

    // MARK: Pages

    static func form(_ preferences: SubscriptionService.Preferences, token: String) -> String {
        let workspace = HTML.escape(preferences.workspaceName)
        let topics = preferences.subscriptions.topics
        var html = "<p>Choose which emails from \(workspace) reach <strong>\(HTML.escape(preferences.maskedEmail))</strong>.</p>\n"
        if let topic = preferences.messageTopic {
            html += "<p>The email you came from was about <strong>\(HTML.escape(topic.name))</strong>.</p>\n"
        }
        html += "<form method=\"post\" action=\"/u/\(HTML.escape(token))\">\n"
        html += "<input type=\"hidden\" name=\"topics\" value=\"\(HTML.escape(topics.map(\.topic.slug).joined(separator: ",")))\">\n"
        if !topics.isEmpty {
            html += "<fieldset>\n<legend>Topics you receive</legend>\n"
            for state in topics {
                let id = "topic-\(HTML.escape(state.topic.slug))"
                var described = ""
                var description = ""
                if let text = state.topic.description {
                    described = " aria-describedby=\"\(id)-about\""
                    description = "<br><span id=\"\(id)-about\">\(HTML.escape(text))</span>"
                }
                html += "<p><input type=\"checkbox\" id=\"\(id)\" name=\"topic.\(HTML.escape(state.topic.slug))\" value=\"on\"\(state.subscribed ? " checked" : "")\(described)> "
                html += "<label for=\"\(id)\">\(HTML.escape(state.topic.name))</label>\(description)</p>\n"
            }
            html += "</fieldset>\n"
        }
        let unsubscribed = preferences.subscriptions.status == .unsubscribed
        html += """
            <fieldset>
            <legend>Everything</legend>
            <p><input type="checkbox" id="unsubscribe-all" name="unsubscribe_all" value="on"\(unsubscribed ? " checked" : "")> \
            <label for="unsubscribe-all">Unsubscribe from all marketing emails from \(workspace)</label></p>
            </fieldset>
            <p>Emails you need for your account, such as receipts, still arrive.</p>
            <p><button type="submit">Save preferences</button></p>
            </form>
            """
        return html
    }

    static func confirmation(_ preferences: SubscriptionService.Preferences, token: String) -> String {
        let workspace = HTML.escape(preferences.workspaceName)
        var html = "<p role=\"status\">Your preferences for <strong>\(HTML.escape(preferences.maskedEmail))</strong> were saved.</p>\n"
        switch preferences.subscriptions.status {
        case .unsubscribed:
            html += "<p>You will receive no marketing emails from \(workspace).</p>\n"
        case .subscribed, .partiallyUnsubscribed:
            let kept = preferences.subscriptions.topics.filter(\.subscribed).map { "<li>\(HTML.escape($0.topic.name))</li>" }
            let left = preferences.subscriptions.topics.filter { !$0.subscribed }.map { "<li>\(HTML.escape($0.topic.name))</li>" }
            if preferences.subscriptions.topics.isEmpty {
                html += "<p>You receive emails from \(workspace).</p>\n"
            }
            if !kept.isEmpty { html += "<h2>You receive</h2>\n<ul>\(kept.joined())</ul>\n" }
            if !left.isEmpty { html += "<h2>You no longer receive</h2>\n<ul>\(left.joined())</ul>\n" }
        }
        html += "<p><a href=\"/u/\(HTML.escape(token))\">Change your preferences</a></p>"
        return html
    }

    /// A page of its own (not the dashboard's): the reader is a recipient, not a user of Tidings.
    static func page(_ title: String, status: HTTPResponse.Status = .ok, _ body: String) -> Response {
        let html = """
            <!doctype html>
            <html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
            <meta name="robots" content="noindex">
            <title>\(HTML.escape(title))</title></head>
            <body><main><h1>\(HTML.escape(title))</h1>
            \(body)
            </main></body></html>
            """
        var headers = HTML.securityHeaders
        headers[.contentType] = "text/html; charset=utf-8"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: html)))
    }

    /// The same answer for every link that is not genuine: nothing tells a forged token from an
    /// expired workspace or a deleted contact.
    static func notFound() -> Response {
        page("Not found", status: .notFound, "<p>This link is not valid.</p>")
    }

    static func text(_ text: String, status: HTTPResponse.Status = .ok) -> Response {
        var headers = HTML.securityHeaders
        headers[.contentType] = "text/plain; charset=utf-8"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: text + "\n")))
    }
}
