import Synchronization
import TidingsDNS

/// An in-memory DNS for the pure tests of SPF, DKIM and DMARC logic: TXT, A, AAAA and MX
/// records by name; names not listed do not exist; names listed in `failing` time out.
/// The real resolver is tested against dnsmasq (`DNSServer`).
final class StaticDNS: DNSLookup {
    private let records: [DNSName: [DNSRecordData]]
    private let failing: Set<DNSName>
    private let asked = Mutex<[String]>([])

    init(txt: [String: [String]] = [:], a: [String: [String]] = [:], mx: [String: [String]] = [:], failing: [String] = []) {
        var records: [DNSName: [DNSRecordData]] = [:]
        for (name, values) in txt {
            records[try! DNSName(name), default: []] += values.map { value in
                // Long values are split into 255-byte strings, as DNS publishes them.
                let bytes = Array(value.utf8)
                return .txt(stride(from: 0, to: max(bytes.count, 1), by: 255).map { Array(bytes[$0..<min($0 + 255, bytes.count)]) })
            }
        }
        for (name, values) in a {
            records[try! DNSName(name), default: []] += values.map { IPAddress($0)!.bitCount == 32 ? .a(IPAddress($0)!) : .aaaa(IPAddress($0)!) }
        }
        for (name, values) in mx {
            records[try! DNSName(name), default: []] += values.enumerated().map { .mx(preference: UInt16($0.offset * 10), exchange: try! DNSName($0.element)) }
        }
        self.records = records
        self.failing = Set(failing.map { try! DNSName($0) })
    }

    /// Every question asked, as `TYPE name`.
    var questions: [String] { asked.withLock { $0 } }

    func records(_ type: DNSRecordType, at name: DNSName) async throws(DNSLookupError) -> [DNSRecordData] {
        asked.withLock { $0.append("\(type) \(name)") }
        if failing.contains(name) { throw .timeout(server: "static", after: .seconds(1)) }
        guard let all = records[name] else { throw .nameNotFound(name) }
        return all.filter { data in
            switch (type, data) {
            case (.txt, .txt), (.a, .a), (.aaaa, .aaaa), (.mx, .mx): true
            default: false
            }
        }
    }
}
