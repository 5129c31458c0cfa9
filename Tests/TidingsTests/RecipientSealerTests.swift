import Crypto
import Foundation
import Testing
import TidingsCrypto
import TidingsDomain
import TidingsStorage

/// An announcement's batch seals its requests by putting each address into JSON written once.
/// What it stores must open to exactly the request `sealRequest` would have stored.
@Suite("Requests sealed by recipient")
struct RecipientSealerTests {
    static let key = DataKey.generate(id: "dk_1")
    static let vault = Vault(
        scope: "ws_test", current: key, keys: [key], index: BlindIndex(key: SymmetricKey(size: .bits256)),
        reload: { id in throw SealingError.unknownKey(id) }
    )

    static func opened(_ sealed: String, id: String) async throws -> MessageRequest {
        let json = try await vault.open(sealed, table: "messages", column: "request", row: id)
        return try JSONDecoder().decode(MessageRequest.self, from: Data(json.utf8))
    }

    @Test("Each address, however it must be escaped, opens as the request it was sealed for", arguments: [
        nil, TrackingOverride(opens: true, clicks: false), TrackingOverride(opens: nil, clicks: true),
    ])
    func sealsLikeOneByOne(tracking: TrackingOverride?) async throws {
        let sealer = try #require(MessageRepository.RecipientSealer(MessageRequest(rcpt: "", tracking: tracking)))
        let addresses = [
            "ada@example.com", #""very \"odd\" local"@example.com"#, "back\\slash@example.com", "josé@bücher.example",
            "rcpt@example.com", "\u{1}rcpt\u{1}@example.com", "tab\tand/slash@example.com",
        ]
        for (index, address) in addresses.enumerated() {
            let id = "msg_\(index)"
            let sealed = try sealer.seal(rcpt: address, messageId: id, vault: Self.vault)
            let expected = MessageRequest(rcpt: address, tracking: tracking)
            #expect(try await Self.opened(sealed, id: id) == expected)
            // The same cell binding as one by one: another row's id does not open it.
            await #expect(throws: SealingError.self) { try await Self.vault.open(sealed, table: "messages", column: "request", row: "msg_other") }
        }
    }

    @Test("A stored request leaves out what is empty, reads back whole, and requests stored with every field still read")
    func compactRequests() throws {
        let minimal = MessageRequest(rcpt: "ada@example.com")
        let minimalJSON = String(decoding: try JSONEncoder().encode(minimal), as: UTF8.self)
        #expect(minimalJSON == #"{"rcpt":"ada@example.com"}"#)
        #expect(try JSONDecoder().decode(MessageRequest.self, from: Data(minimalJSON.utf8)) == minimal)

        let full = MessageRequest(
            rcpt: "ada@example.com", variables: ["order": .object(["id": .number(7)])], cc: ["cc@example.com"], bcc: ["bcc@example.com"],
            replyTo: "reply@example.com", headers: [["X-Campaign", "spring"]], metadata: ["ref": .string("r1")],
            attachments: [MessageAttachment(filename: "a.txt", contentType: "text/plain", content: "aGk=")], settled: ["cc@example.com"],
            tracking: TrackingOverride(opens: false, clicks: true)
        )
        #expect(try JSONDecoder().decode(MessageRequest.self, from: JSONEncoder().encode(full)) == full)

        // The form written before empty fields were left out.
        let earlier = #"{"rcpt":"bob@example.com","variables":{},"cc":[],"bcc":[],"headers":[],"metadata":{},"attachments":[],"settled":[]}"#
        #expect(try JSONDecoder().decode(MessageRequest.self, from: Data(earlier.utf8)) == MessageRequest(rcpt: "bob@example.com"))
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(MessageRequest.self, from: Data(#"{"cc":[]}"#.utf8)) }
    }
}
