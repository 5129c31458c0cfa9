import Testing
@testable import TidingsDomain

@Suite("EventSlug")
struct EventSlugTests {
    @Test(arguments: [
        ("signed-up", "signed-up"),
        ("Signed-Up", "signed-up"),
        ("  order.completed \n", "order.completed"),
        ("user_created", "user_created"),
        ("a", "a"),
        ("0day", "0day"),
        ("v1.2.3", "v1.2.3"),
        ("trial-ends_in.3-days", "trial-ends_in.3-days"),
        ("ends-", "ends-"),
    ])
    func validSlugIsNormalised(_ raw: String, _ expected: String) throws {
        #expect(try EventSlug.normalise(raw) == expected)
    }

    @Test func slugIsNotRewrittenToSnakeCase() throws {
        #expect(try EventSlug.normalise("signedUp") == "signedup")
    }

    @Test func slugOf64CharactersIsAccepted() throws {
        let raw = String(repeating: "s", count: 64)
        #expect(try EventSlug.normalise(raw) == raw)
    }

    @Test(arguments: [
        "",
        "   ",
        "-signup",
        ".signup",
        "_signup",
        "signed up",
        "signed/up",
        "sign+up",
        "signed:up",
        "café",
        "\u{212A}elvin",
        "signed\u{200B}up",
        String(repeating: "s", count: 65),
    ])
    func invalidSlugIsRejected(_ raw: String) {
        let error = #expect(throws: DomainError.self) { try EventSlug.normalise(raw) }
        #expect(error?.kind == .invalid)
        #expect(error?.code == "invalid_slug")
        #expect(error?.field == "slug")
        #expect(error?.message.contains("^[a-z0-9][a-z0-9._-]{0,63}$") == true)
    }
}
