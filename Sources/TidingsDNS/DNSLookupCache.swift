/// Remembers every answer (and NXDOMAIN) for as long as it lives: one check of a domain asks
/// for the same names many times (an include reached twice, the A records of a server), and
/// one answer per name keeps the check consistent with itself. Failures are not remembered.
public actor DNSLookupCache: DNSLookup {
    private let upstream: any DNSLookup
    private var answers: [Key: Result<[DNSRecordData], DNSLookupError>] = [:]
    /// How many questions reached `upstream`.
    public private(set) var queries = 0

    struct Key: Hashable {
        var type: DNSRecordType
        var name: DNSName
    }

    public init(_ upstream: any DNSLookup) {
        self.upstream = upstream
    }

    public func records(_ type: DNSRecordType, at name: DNSName) async throws(DNSLookupError) -> [DNSRecordData] {
        let key = Key(type: type, name: name)
        if let known = answers[key] { return try known.get() }
        queries += 1
        do {
            let records = try await upstream.records(type, at: name)
            answers[key] = .success(records)
            return records
        } catch .nameNotFound(let missing) {
            answers[key] = .failure(.nameNotFound(missing))
            throw .nameNotFound(missing)
        }
    }
}
