// swift-tools-version: 6.2
import PackageDescription

// The library targets mirror the layers in DESIGN.md; data flows down only:
// TidingsApp → TidingsHTTP → TidingsServices → (TidingsDomain, TidingsStorage, TidingsCrypto)
// TidingsKMS (key-encryption keys held by a key management service) sits beside TidingsCrypto;
// only TidingsApp picks it. TidingsDNS (a DNS client) sits below TidingsMail, which reads SPF,
// DKIM and DMARC records through it.
let package = Package(
    name: "tidings",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "tidings", targets: ["tidings"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-asn1", from: "1.7.4"),
        .package(url: "https://github.com/apple/swift-certificates", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-configuration", from: "1.4.0"),
        .package(url: "https://github.com/apple/swift-crypto", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.3"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/vapor/sql-kit", from: "3.36.0"),
        .package(url: "https://github.com/vapor/sqlite-kit", from: "4.5.2"),
        .package(url: "https://github.com/vapor/postgres-kit", from: "2.17.0"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
    ],
    targets: [
        // Pure types and rules: no I/O, no framework.
        .target(name: "TidingsDomain"),
        // DNS: the message codec (pure) and a resolver over UDP and TCP (SwiftNIO).
        .target(
            name: "TidingsDNS",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        // Mail: template rendering, MIME, DKIM (pure), the SMTP client (SwiftNIO), and the
        // checks of a sending domain's SPF, DKIM and DMARC records.
        .target(
            name: "TidingsMail",
            dependencies: [
                "TidingsDomain",
                "TidingsDNS",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
            ]
        ),
        // Key hashing, identifiers and (later) sealing of fields.
        .target(
            name: "TidingsCrypto",
            dependencies: [
                "TidingsDomain",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
            ]
        ),
        // KEK providers backed by a key management service: AWS KMS (and compatible) over SigV4.
        .target(
            name: "TidingsKMS",
            dependencies: [
                "TidingsDomain",
                "TidingsCrypto",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        // HTTPS certificates: the local CA, files reloaded on change, ACME (RFC 8555); the TLS policy.
        .target(
            name: "TidingsTLS",
            dependencies: [
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOFoundationCompat", package: "swift-nio"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Repositories over SQLKit, migrations, SQLite and PostgreSQL clients.
        .target(
            name: "TidingsStorage",
            dependencies: [
                "TidingsDomain",
                "TidingsCrypto",
                .product(name: "SQLKit", package: "sql-kit"),
                .product(name: "SQLiteKit", package: "sqlite-kit"),
                .product(name: "PostgresKit", package: "postgres-kit"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // Use cases: what the API, the CLI and background jobs call (and the webhook sender, over AsyncHTTPClient).
        .target(
            name: "TidingsServices",
            dependencies: [
                "TidingsDomain",
                "TidingsDNS",
                "TidingsMail",
                "TidingsCrypto",
                "TidingsStorage",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                // Webhook requests.
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]
        ),
        // The JSON API: routes, middleware, the OpenAPI document.
        .target(
            name: "TidingsHTTP",
            dependencies: [
                "TidingsDomain",
                "TidingsCrypto",
                "TidingsMail",
                "TidingsStorage",
                "TidingsServices",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            resources: [.copy("openapi.json")]
        ),
        // Composition root: configuration and the builder used by the CLI and by tests.
        .target(
            name: "TidingsApp",
            dependencies: [
                "TidingsDomain",
                "TidingsDNS",
                "TidingsCrypto",
                "TidingsMail",
                "TidingsKMS",
                "TidingsStorage",
                "TidingsServices",
                "TidingsHTTP",
                "TidingsTLS",
                .product(name: "Configuration", package: "swift-configuration"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .executableTarget(
            name: "tidings",
            dependencies: [
                "TidingsApp",
                "TidingsStorage",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(
            name: "TidingsTests",
            dependencies: [
                "TidingsDomain",
                "TidingsDNS",
                "TidingsCrypto",
                "TidingsKMS",
                "TidingsStorage",
                "TidingsServices",
                "TidingsHTTP",
                "TidingsApp",
                "TidingsMail",
                "TidingsTLS",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
            ]
        ),
    ]
)
