import Foundation
import Hummingbird
import HummingbirdTesting
import Testing
import TidingsApp
import TidingsCrypto
import TidingsDomain
@testable import TidingsServices
import TidingsStorage

extension Tidings {
    /// Queues a marketing message the way an announcement does (drafted on Tidings' own behalf,
    /// stored with its job in one transaction), and returns its id.
    func queueMarketing(
        workspaceId: String, email: String, templateSlug: String, topicId: String?, originId: String = "ann_test"
    ) async throws -> String {
        let env = environment
        var targets: [String: TemplateRepository.SendTarget] = [:]
        let draft = try await messages.draft(
            workspaceId: workspaceId, email: try EmailAddress(email), templateSlug: templateSlug,
            origin: MessageOrigin(kind: .announcement, id: originId, topicId: topicId, marketing: true), sendAt: env.now(), targets: &targets
        )
        let vault = try await keyring.vault(for: workspaceId)
        let audit = try await env.auditRecorder()
        let accepted = try await env.database.transaction { db in
            try await MessageService.store([draft], workspaceId: workspaceId, vault: vault, actor: .tester, audit: audit, db: db, now: env.now())
        }
        return accepted[0].id
    }

    /// The unsubscribe link token a message to `email` carries.
    func unsubscribeToken(workspaceId: String, email: String, messageId: String?) async throws -> String {
        let vault = try await keyring.vault(for: workspaceId)
        let contactId = try await database.read { db in try await ContactRepository(db, vault: vault).findId(email: try EmailAddress(email)) }
        return UnsubscribeToken(workspaceId: workspaceId, contactId: try #require(contactId), messageId: messageId).encode(with: vault)
    }
}

/// Runs `body` against a Tidings served on a real loopback port (the HTTPS router, spoken to
/// in plain HTTP), so other programs can send it requests.
func withLiveAPI<T: Sendable>(
    _ backend: TestBackend, clock: TestClock? = nil, _ body: @Sendable (TestClient, Int, Tidings) async throws -> T
) async throws -> T {
    try await withTidings(backend, clock: clock) { tidings in
        let application = try tidings.buildApplication()
        return try await application.test(.live) { client in
            try await body(TestClient(client: client), try #require(client.port), tidings)
        }
    }
}

/// What curl got: status, headers (lowercased names) and body.
struct CurlResult: Sendable {
    var status: Int
    var headers: [String: String]
    var body: String
}

/// One request with curl: no cookie jar, no JavaScript, as a mailbox provider's unsubscriber.
func curlRequest(_ arguments: [String]) async throws -> CurlResult {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tidings-curl-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: directory) }
    let headerFile = directory.appendingPathComponent("headers"), bodyFile = directory.appendingPathComponent("body")
    let result = try await run("/usr/bin/curl", ["-sS", "-D", headerFile.path, "-o", bodyFile.path, "-w", "%{http_code}"] + arguments)
    guard result.status == 0, let status = Int(result.stdout) else { throw SMTPPeer.Failure(description: "curl failed: \(result.stderr)") }
    var headers: [String: String] = [:]
    for line in ((try? String(contentsOf: headerFile, encoding: .utf8)) ?? "").components(separatedBy: "\r\n") {
        guard let colon = line.firstIndex(of: ":") else { continue }
        headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
    }
    return CurlResult(status: status, headers: headers, body: (try? String(contentsOf: bodyFile, encoding: .utf8)) ?? "")
}

/// Checks a page with Python's HTML parser: balanced elements, a label for every visible
/// input, a legend in every fieldset, and no scripts, styles, event handlers or loaded
/// resources. Returns the problems found (empty when none).
func htmlProblems(_ html: String) async throws -> [String] {
    let file = FileManager.default.temporaryDirectory.appendingPathComponent("tidings-page-\(UUID().uuidString).html")
    try Data(html.utf8).write(to: file)
    defer { try? FileManager.default.removeItem(at: file) }
    let script = """
        import sys
        from html.parser import HTMLParser
        VOID = {'meta', 'input', 'br', 'hr', 'img', 'link', 'source', 'wbr'}
        class Page(HTMLParser):
            def __init__(self):
                super().__init__()
                self.stack, self.ids, self.labelled, self.inputs, self.errors = [], set(), set(), [], []
                self.fieldsets = self.legends = 0
            def handle_starttag(self, tag, attrs):
                a = dict(attrs)
                if 'id' in a:
                    if a['id'] in self.ids: self.errors.append('duplicate id ' + a['id'])
                    self.ids.add(a['id'])
                if tag == 'label' and 'for' in a: self.labelled.add(a['for'])
                if tag == 'input' and a.get('type') != 'hidden': self.inputs.append(a.get('id'))
                if tag in ('script', 'style', 'img', 'link', 'iframe', 'object') or 'style' in a or any(k.startswith('on') for k in a):
                    self.errors.append('not allowed: <%s %s>' % (tag, ' '.join(a)))
                if tag == 'fieldset': self.fieldsets += 1
                if tag == 'legend': self.legends += 1
                if tag not in VOID: self.stack.append(tag)
            def handle_endtag(self, tag):
                if not self.stack or self.stack[-1] != tag: self.errors.append('unbalanced </%s> in %s' % (tag, self.stack[-3:]))
                else: self.stack.pop()
        page = Page()
        page.feed(open(sys.argv[1]).read())
        page.close()
        if page.stack: page.errors.append('unclosed: %s' % page.stack)
        for id in page.inputs:
            if id is None or id not in page.labelled: page.errors.append('input without a label: %s' % id)
        if page.fieldsets != page.legends: page.errors.append('a fieldset without a legend')
        print('\\n'.join(page.errors))
        """
    let result = try await run(SMTPPeer.python, ["-c", script, file.path])
    guard result.status == 0 else { throw SMTPPeer.Failure(description: "the HTML check failed: \(result.stderr)") }
    return result.stdout.split(separator: "\n").map(String.init)
}

/// A received message's header fields, unfolded, by lowercased name (all values of each).
func headerFields(_ message: String) -> [String: [String]] {
    let block = message.components(separatedBy: "\r\n\r\n").first ?? ""
    let unfolded = block.replacingOccurrences(of: "\r\n ", with: " ").replacingOccurrences(of: "\r\n\t", with: " ")
    var fields: [String: [String]] = [:]
    for line in unfolded.components(separatedBy: "\r\n") {
        guard let colon = line.firstIndex(of: ":") else { continue }
        fields[line[..<colon].lowercased(), default: []].append(line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces))
    }
    return fields
}
