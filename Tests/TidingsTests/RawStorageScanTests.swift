import Foundation
import SQLKit
import Testing
import TidingsApp
import TidingsServices
import TidingsStorage

/// The proof behind "encrypted at rest": after a scenario that touches every kind of
/// personal data and secret Tidings stores, the raw SQLite files (with the WAL) and a
/// `pg_dump` hold none of the values used. (Every other test is scanned for email
/// addresses and API keys as well, when its scratch database is removed.)
@Suite("Raw-storage scan")
struct RawStorageScanTests {
    /// Values no one would store by accident; each must appear only sealed or hashed.
    static let needles = [
        "Zanzibar-attribute-7781", "Before-update-9981", "Deleted-attribute-4410",
        "Quokka-property-5521", "Narwhal-csv-3390", "2031-05-17", "Owner Ambrose",
    ]

    @Test("After the full scenario no email, attribute value, property value or secret is in the raw storage", arguments: TestBackend.all)
    func scenarioLeavesNothingInTheClear(backend: TestBackend) async throws {
        let scratch = try await Scratch.make(backend)
        let configuration = try await TidingsConfiguration.load(
            flags: scratch.flags,
            environment: [:]
        )
        let clock = TestClock()
        let tidings = try await Tidings.open(configuration, logger: TestLog.logger("scan"), now: { clock.now })
        let secrets = try await TenantScope.with(.instance) { try await tidings.withDatabase { tidings in
            try await tidings.migrate()
            let application = try tidings.buildApplication()
            let secrets = try await application.test(.router) { raw in
                let api = TestClient(client: raw)
                let created = try await tidings.workspaces.create(
                    name: "Scan", ownerEmail: "ambrose.owner@scan.test", environment: .production, by: .tester
                )
                let key = created.token.secret
                #expect(try await api.post("/v1/contacts", key: key, json: [
                    "email": "zoe.person@scan.test", "plan": "Zanzibar-attribute-7781", "trial_ends": "2031-05-17",
                    "display": "Owner Ambrose", "note": "Before-update-9981",
                ]).status == .created)
                #expect(try await api.post("/v1/contacts", key: key, json: ["email": "zoe.person@scan.test", "note": "changed"]).status == .ok)
                #expect(try await api.post("/v1/contacts", key: key, json: ["email": "gone.person@scan.test", "x": "Deleted-attribute-4410"]).status == .created)
                #expect(try await api.delete("/v1/contacts/gone.person@scan.test", key: key).status == .ok)
                #expect(try await api.post("/v1/events", key: key, json: [
                    "email": "eve.event@scan.test", "slug": "paid", "properties": ["reference": "Quokka-property-5521"],
                ]).status == .created)
                let imported = try await api.request(
                    .post, "/v1/contacts/import", key: key, body: "email,city\ncsv.person@scan.test,Narwhal-csv-3390\n", contentType: "text/csv"
                )
                #expect(imported.status == .ok)
                let issued = try await api.post("/v1/api-keys", key: key, json: ["name": "scan", "scopes": ["contacts:read"]])
                let keyId = try #require(issued.json["id"] as? String)
                let rotated = try await api.post("/v1/api-keys/\(keyId)/rotate", key: key, json: [:])
                #expect(try await api.get("/v1/contacts/zoe.person@scan.test/export", key: key).status == .ok)
                // A team member: password, TOTP secret, recovery codes, setup link and session token.
                let added = try await tidings.accounts.addMember(
                    workspaceId: created.workspace.id, email: "mona.member@scan.test", role: .admin, by: .tester
                )
                let link = try #require(added.setupLink)
                let person = try await tidings.setUp(api, clock: clock, link: link, email: "mona.member@scan.test", password: "Kestrel-password-6612 lanterns")
                let signedIn = try await signIn(person, api, clock: clock)
                let accountSecrets = [person.password, person.secret, String(link.split(separator: "/").last!)]
                    + person.recoveryCodes + person.recoveryCodes.map { $0.replacingOccurrences(of: "-", with: "") }
                    + [signedIn.cookies["tidings_session"]].compactMap { $0 }
                _ = try await KeyRotation(tidings.environment).rotateDataKey(scope: created.workspace.id, by: .tester)
                #expect((try await api.get("/v1/contacts/zoe.person@scan.test", key: key).json["attributes"] as? [String: Any])?["plan"] as? String == "Zanzibar-attribute-7781")
                return [key] + [issued.json["secret"], rotated.json["secret"]].compactMap { $0 as? String } + accountSecrets
            }
            #expect(secrets.count == 27, "3 API keys, password, TOTP secret, setup link, 20 forms of recovery codes, session")
            // While open, the WAL holds the latest pages.
            if backend == .sqlite {
                #expect(StorageScan.scanSQLite(in: scratch.directory, needles: Self.needles + secrets).isEmpty)
            }
            return secrets
        } }
        let found = try await StorageScan.scan(scratch, needles: Self.needles + secrets)
        #expect(found.isEmpty, "\(found)")
        await scratch.remove()
    }

    @Test("The scanner finds addresses and keys between binary bytes, and not look-alikes or short random matches")
    func scannerFindsAddressesInBinary() {
        let key = "tdg_" + String(repeating: "Ab1", count: 14)
        var page: [UInt8] = [0, 7, 255] + Array("x ada.l+1@mail.example.org\u{1}".utf8) + [0xC3, 0x28]
        page += Array("id=\(key);tdg_short;p_1234@host;user@localhost;a@b.c;ok@x.io9".utf8) + [0]
        // Random bytes that look like a short address with capitals; a long mixed-case address.
        page += [0x91] + Array("o@b.evdU".utf8) + [0x05] + Array(" Ada.Lovelace@Example.COM ".utf8)
        let found = StorageScan.findings(in: page, source: "page", needles: ["Quokka"])
        #expect(found.contains("page: email address ada.l+1@mail.example.org"))
        #expect(found.contains("page: email address ok@x.io"))
        #expect(found.contains("page: email address Ada.Lovelace@Example.COM"))
        #expect(found.contains("page: API key tdg_Ab1Ab1Ab…"))
        #expect(found.count == 4, "\(found)")
        #expect(StorageScan.findings(in: Array("a Quokka-1".utf8), source: "p", needles: ["Quokka"]) == ["p: test value Quokka"])
    }

    @Test("The scan does find a value stored in the clear", arguments: TestBackend.all)
    func scanFindsPlaintext(backend: TestBackend) async throws {
        let scratch = try await Scratch.make(backend)
        let configuration = try await TidingsConfiguration.load(
            flags: scratch.flags,
            environment: [:]
        )
        try await TenantScope.with(.instance) { try await Tidings.open(configuration, logger: TestLog.logger("scan")).withDatabase { tidings in
            try await tidings.migrate()
            try await tidings.adminDatabase.transaction { db in
                try await db.raw("CREATE TABLE careless (note TEXT)").run()
                try await db.raw("INSERT INTO careless (note) VALUES ('leaked.person@scan.test Quokka-property-5521')").run()
            }
        } }
        let found = try await StorageScan.scan(scratch, needles: Self.needles)
        #expect(found.contains { $0.contains("leaked.person@scan.test") })
        #expect(found.contains { $0.contains("Quokka-property-5521") })
        await scratch.remove(scan: false)
    }
}
