import SQLKit

/// An email server may pin the public keys its certificate must carry (`tls_pins`: base64
/// SHA-256 digests of SPKI, separated by spaces; NULL for none), and each message records
/// whether its last attempt verified the server's certificate (`tls_verified`; NULL without TLS).
struct AddTLSPinsAndVerification: Migration {
    let number = 18
    let name = "AddTLSPinsAndVerification"

    func apply(on db: any SQLDatabase, kind: DatabaseKind) async throws {
        try await execute([
            "ALTER TABLE email_servers ADD COLUMN tls_pins TEXT",
            "ALTER TABLE messages ADD COLUMN tls_verified BOOLEAN",
        ], on: db)
    }
}
