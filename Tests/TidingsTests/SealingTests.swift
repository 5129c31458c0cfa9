import Crypto
import Foundation
import Testing
@testable import TidingsCrypto

@Suite("Sealing")
struct SealingTests {
    let key = DataKey.generate(id: "dk_1")
    let context = SealContext(workspaceId: "ws_a", table: "contacts", column: "email", rowId: "ct_1")

    @Test("A sealed value opens in its own place and hides the plaintext")
    func roundTrip() throws {
        let sealed = try Sealer.seal(Data("ada@example.com".utf8), with: key, context: context)
        #expect(sealed.range(of: Data("ada@example.com".utf8)) == nil)
        #expect(try Sealer.keyId(of: sealed) == "dk_1")
        #expect(try Sealer.open(sealed, with: key, context: context) == Data("ada@example.com".utf8))
        // A fresh nonce every time: equal plaintexts do not give equal ciphertexts.
        #expect(try Sealer.seal(Data("ada@example.com".utf8), with: key, context: context) != sealed)
    }

    @Test("A value moved to another row, column, table or workspace fails to open", arguments: [
        SealContext(workspaceId: "ws_b", table: "contacts", column: "email", rowId: "ct_1"),
        SealContext(workspaceId: "ws_a", table: "events", column: "email", rowId: "ct_1"),
        SealContext(workspaceId: "ws_a", table: "contacts", column: "name", rowId: "ct_1"),
        SealContext(workspaceId: "ws_a", table: "contacts", column: "email", rowId: "ct_2"),
        // Length-prefixed parts: shifting a character between fields is a different place.
        SealContext(workspaceId: "ws_ac", table: "ontacts", column: "email", rowId: "ct_1"),
    ])
    func movedValueFails(other: SealContext) throws {
        let sealed = try Sealer.seal(Data("secret".utf8), with: key, context: context)
        #expect(throws: SealingError.authenticationFailed) { try Sealer.open(sealed, with: key, context: other) }
    }

    @Test("Any changed byte, another key or an unknown format is refused")
    func tamperingIsRefused() throws {
        let sealed = try Sealer.seal(Data("secret".utf8), with: key, context: context)
        for index in (2 + 4)..<sealed.count {
            var tampered = sealed
            tampered[tampered.startIndex + index] ^= 0x01
            #expect(throws: SealingError.self) { try Sealer.open(tampered, with: key, context: context) }
        }
        #expect(throws: SealingError.unknownKey("dk_1")) {
            try Sealer.open(sealed, with: DataKey.generate(id: "dk_2"), context: context)
        }
        #expect(throws: SealingError.authenticationFailed) {
            try Sealer.open(sealed, with: DataKey.generate(id: "dk_1"), context: context)
        }
        #expect(throws: SealingError.unrecognisedFormat) { try Sealer.keyId(of: Data([0x02, 0x00])) }
    }

    @Test("Blind indexes are stable within a workspace key and differ across keys")
    func blindIndex() {
        let first = BlindIndex(key: SymmetricKey(size: .bits256))
        let second = BlindIndex(key: SymmetricKey(size: .bits256))
        #expect(first.index("ada@example.com") == first.index("ada@example.com"))
        #expect(first.index("ada@example.com") != first.index("bob@example.com"))
        #expect(first.index("ada@example.com") != second.index("ada@example.com"))
    }

    @Test("The local KEK file is created 0600, refused when looser, and wraps keys per workspace")
    func localKeyProvider() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tidings-kek-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("kek.key").path
        let provider = try LocalKeyProvider.loadOrCreate(at: path)
        let mode = try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? NSNumber
        #expect(mode?.intValue == 0o600)
        #expect(try LocalKeyProvider.loadOrCreate(at: path).kekId == provider.kekId, "the same file is the same KEK")

        let dataKey = SymmetricKey(size: .bits256)
        let wrapped = try await provider.wrap(dataKey, for: "ws_a")
        #expect(wrapped.range(of: dataKey.withUnsafeBytes { Data($0) }) == nil)
        let unwrapped = try await provider.unwrap(wrapped, for: "ws_a")
        #expect(unwrapped == dataKey)
        await #expect(throws: (any Error).self) { _ = try await provider.unwrap(wrapped, for: "ws_b") }

        try FileManager.default.setAttributes([.posixPermissions: 0o640], ofItemAtPath: path)
        #expect(throws: KeyFile.Problem.self) { _ = try LocalKeyProvider.loadOrCreate(at: path) }
    }
}
