import Crypto
import Foundation
import Testing
@testable import TidingsKMS

/// AWS's Signature Version 4 test suite: credentials AKIDEXAMPLE, region us-east-1, service
/// `service`, 2015-08-30T12:36:00Z, host example.amazonaws.com; the signatures are the published ones.
@Suite("SigV4")
struct SigV4Tests {
    static let suiteDate = Date(timeIntervalSince1970: 1_440_938_160) // 20150830T123600Z
    static let secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
    static let sessionToken =
        "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA=="
    static let emptyHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

    static func signer(sessionToken: String? = nil) -> SigV4Signer {
        SigV4Signer(
            credentials: AWSCredentials(accessKeyId: "AKIDEXAMPLE", secretAccessKey: secret, sessionToken: sessionToken),
            region: "us-east-1", service: "service"
        )
    }

    static func request(
        _ method: String, query: [(name: String, value: String)] = [], headers: [(name: String, value: String)] = [], body: String = ""
    ) -> SigV4Signer.Request {
        SigV4Signer.Request(method: method, host: "example.amazonaws.com", path: "/", query: query, headers: headers, body: Data(body.utf8))
    }

    @Test("get-vanilla: canonical request, string to sign, signature and Authorization header")
    func getVanilla() {
        let signed = Self.signer().sign(Self.request("GET"), at: Self.suiteDate)
        #expect(signed.canonicalRequest == """
            GET
            /

            host:example.amazonaws.com
            x-amz-date:20150830T123600Z

            host;x-amz-date
            \(Self.emptyHash)
            """)
        #expect(signed.stringToSign == """
            AWS4-HMAC-SHA256
            20150830T123600Z
            20150830/us-east-1/service/aws4_request
            bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63
            """)
        #expect(signed.signature == "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31")
        #expect(signed.authorization == """
            AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
            SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31
            """)
        let headers = Dictionary(signed.headers.map { ($0.name, $0.value) }, uniquingKeysWith: { $1 })
        #expect(headers["Host"] == "example.amazonaws.com")
        #expect(headers["X-Amz-Date"] == "20150830T123600Z")
        #expect(headers["Authorization"] == signed.authorization)
        #expect(headers["X-Amz-Security-Token"] == nil && headers["X-Amz-Content-Sha256"] == nil)
    }

    @Test("The suite's other vectors", arguments: [
        ("post-vanilla", SigV4Tests.request("POST"), "host;x-amz-date",
         "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"),
        ("get-vanilla-query-order-key-case", SigV4Tests.request("GET", query: [("Param2", "value2"), ("Param1", "value1")]), "host;x-amz-date",
         "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"),
        ("get-vanilla-query-unreserved", SigV4Tests.request("GET", query: [(SigV4Tests.unreserved, SigV4Tests.unreserved)]), "host;x-amz-date",
         "9c3e54bfcdf0b19771a7f523ee5669cdf59bc7cc0884027167c21bb143a40197"),
        ("get-header-value-trim", SigV4Tests.request("GET", headers: [("My-Header1", " value1"), ("My-Header2", #" "a   b   c""#)]),
         "host;my-header1;my-header2;x-amz-date", "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736"),
        ("post-header-value-case", SigV4Tests.request("POST", headers: [("My-Header1", "VALUE1")]), "host;my-header1;x-amz-date",
         "cdbc9802e29d2942e5e10b5bccfdd67c5f22c7c4e8ae67b53629efa58b974b7d"),
        ("post-x-www-form-urlencoded",
         SigV4Tests.request("POST", headers: [("Content-Type", "application/x-www-form-urlencoded")], body: "Param1=value1"),
         "content-type;host;x-amz-date", "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a"),
    ])
    func suiteVectors(name: String, request: SigV4Signer.Request, signedHeaders: String, signature: String) {
        let signed = Self.signer().sign(request, at: Self.suiteDate)
        #expect(signed.signature == signature, "\(name)")
        #expect(signed.authorization.contains("SignedHeaders=\(signedHeaders), Signature=\(signature)"), "\(name)")
    }

    static let unreserved = "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

    @Test("post-sts-header-before: a session token is sent as X-Amz-Security-Token and signed")
    func sessionToken() {
        let signed = Self.signer(sessionToken: Self.sessionToken).sign(Self.request("POST"), at: Self.suiteDate)
        #expect(signed.stringToSign.hasSuffix("\nc237e1b440d4c63c32ca95b5b99481081cb7b13c7e40434868e71567c1a882f6"))
        #expect(signed.authorization.hasSuffix("""
            SignedHeaders=host;x-amz-date;x-amz-security-token, \
            Signature=85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead
            """))
        #expect(signed.headers.contains { $0.name == "X-Amz-Security-Token" && $0.value == Self.sessionToken })
    }

    @Test("The signing key of AWS's documented derivation example (iam, 2012-02-15)")
    func signingKey() {
        let key = SigV4Signer.signingKey(secret: Self.secret, day: "20120215", region: "us-east-1", service: "iam")
        #expect(key.withUnsafeBytes { SigV4Signer.hex($0) } == "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d")
    }

    @Test("X-Amz-Content-Sha256, when asked for, carries the payload hash and is signed")
    func contentSha256() {
        let signed = Self.signer().sign(Self.request("POST", body: "Param1=value1"), at: Self.suiteDate, includeContentSha256: true)
        let hash = SigV4Signer.hex(SHA256.hash(data: Data("Param1=value1".utf8)))
        #expect(signed.headers.contains { $0.name == "X-Amz-Content-Sha256" && $0.value == hash })
        #expect(signed.canonicalRequest.contains("\nx-amz-content-sha256:\(hash)\n"))
        #expect(signed.authorization.contains("SignedHeaders=host;x-amz-content-sha256;x-amz-date,"))
    }

    @Test("Paths are encoded again per segment; query pairs are encoded and sorted; dates are UTC")
    func encoding() {
        #expect(SigV4Signer.canonicalURI("") == "/")
        #expect(SigV4Signer.canonicalURI("/a%20b/c") == "/a%2520b/c")
        // Sorted by the encoded bytes: `%` comes before letters.
        #expect(SigV4Signer.canonicalQuery([("b", "x y"), ("a", "2"), ("a", "1"), ("ü", "/")]) == "%C3%BC=%2F&a=1&a=2&b=x%20y")
        let leapDay = SigV4Signer.timestamps(Date(timeIntervalSince1970: 951_782_400))
        #expect(leapDay.amzDate == "20000229T000000Z" && leapDay.day == "20000229")
        let suite = SigV4Signer.timestamps(Self.suiteDate)
        #expect(suite.amzDate == "20150830T123600Z" && suite.day == "20150830")
    }

    @Test("Credentials never show their secrets when printed")
    func credentialsAreRedacted() {
        let credentials = AWSCredentials(accessKeyId: "AKIDEXAMPLE", secretAccessKey: Self.secret, sessionToken: "token-123")
        for text in ["\(credentials)", String(reflecting: credentials), { var out = ""; dump(credentials, to: &out); return out }()] {
            #expect(!text.contains(Self.secret) && !text.contains("token-123") && !text.contains("AKIDEXAMPLE"), "\(text)")
        }
    }
}
