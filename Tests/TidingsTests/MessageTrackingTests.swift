import Crypto
import Foundation
import Testing
import TidingsCrypto
import TidingsDomain
@testable import TidingsServices

@Suite("Message tracking at delivery")
struct MessageTrackingTests {
    static let vault = Vault(
        scope: "ws_test", current: DataKey.generate(id: "dk_1"), keys: [], index: BlindIndex(key: SymmetricKey(size: .bits256)),
        reload: { _ in throw SealingError.unknownKey("dk") }
    )
    static let id = "msg_01JD3V9Q4ZK1T8X5M2N7P6R0AB"

    @Test("A retry keeps the positions of links stored by the earlier attempt and appends new ones; each URL gets one position")
    func retryKeepsPositions() throws {
        let tracking = MessageTracking(publicURL: "https://mail.acme.test/")
        let html = """
            <a href="https://acme.test/new">n</a> <a href="https://acme.test/x">x</a> <a href="https://acme.test/new">again</a>
            """
        let existing = ["https://acme.test/old", "https://acme.test/x"]
        let (result, links) = tracking.apply(
            html: html, messageId: Self.id, decision: TrackingDecision(opens: false, clicks: true), existing: existing, vault: Self.vault
        )
        #expect(links == existing + ["https://acme.test/new"])
        let tokens = TrackingTokens(vault: Self.vault)
        let new = "https://mail.acme.test/t/c/" + tokens.encoded(TrackingToken(click: Self.id, position: 2))
        let x = "https://mail.acme.test/t/c/" + tokens.encoded(TrackingToken(click: Self.id, position: 1))
        #expect(result == "<a href=\"\(new)\">n</a> <a href=\"\(x)\">x</a> <a href=\"\(new)\">again</a>")
        #expect(!result.contains("img"), "no pixel without opens")
    }

    @Test("A token verifies only with its own MAC, compared whole")
    func verification() {
        let tokens = TrackingTokens(vault: Self.vault)
        let token = TrackingToken(open: Self.id)
        let mac = tokens.mac(token)
        #expect(tokens.verify(token, mac: mac))
        #expect(!tokens.verify(token, mac: String(mac.dropLast())))
        #expect(!tokens.verify(TrackingToken(click: Self.id, position: 0), mac: mac))
        let other = TrackingTokens(vault: Vault(
            scope: "ws_other", current: DataKey.generate(id: "dk_2"), keys: [], index: BlindIndex(key: SymmetricKey(size: .bits256)),
            reload: { _ in throw SealingError.unknownKey("dk") }
        ))
        #expect(!other.verify(token, mac: mac), "another workspace's key makes another MAC")
    }
}
