/// A DMARC policy record (RFC 7489 §6.3), published as TXT at `_dmarc.<domain>`.
public struct DMARCRecord: Sendable, Equatable {
    public enum Policy: String, Sendable, Equatable {
        case none, quarantine, reject
    }

    public enum Alignment: String, Sendable, Equatable {
        case relaxed = "r", strict = "s"
    }

    public var policy: Policy
    /// `sp=`: the policy for subdomains; `nil` when they follow `policy`.
    public var subdomainPolicy: Policy?
    /// `adkim=` and `aspf=`, relaxed unless given.
    public var dkimAlignment: Alignment
    public var spfAlignment: Alignment
    /// `pct=`: the share of failing mail the policy applies to, 100 unless given.
    public var percentage: Int
    /// `rua=`: where aggregate reports go.
    public var aggregateReports: [String]
    public var warnings: [String]

    /// Whether a TXT record is a DMARC record: it starts with the `v=DMARC1` tag.
    public static func isDMARC(_ text: String) -> Bool {
        guard let first = text.split(separator: ";", maxSplits: 1).first else { return false }
        let parts = first.split(separator: "=", maxSplits: 1)
        return parts.count == 2 && parts[0].trimmingWhitespace == "v" && parts[1].trimmingWhitespace == "DMARC1"
    }

    public init(parsing text: String) throws(DMARCSyntaxError) {
        var tags: [(String, String)] = []
        for piece in text.split(separator: ";", omittingEmptySubsequences: false) {
            let trimmed = piece.trimmingWhitespace
            if trimmed.isEmpty { continue }
            let parts = trimmed.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.count == 2 else { throw DMARCSyntaxError("'\(trimmed)' is not a tag=value pair.") }
            let name = parts[0].trimmingWhitespace.lowercased()
            guard !name.isEmpty, name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") }) else {
                throw DMARCSyntaxError("'\(parts[0])' is not a tag name.")
            }
            tags.append((name, String(parts[1].trimmingWhitespace)))
        }
        guard let version = tags.first, version.0 == "v", version.1 == "DMARC1" else {
            throw DMARCSyntaxError("The record must start with v=DMARC1.")
        }
        var seen = Set<String>()
        for (name, _) in tags where !seen.insert(name).inserted {
            throw DMARCSyntaxError("The tag \(name)= appears more than once.")
        }
        let values = Dictionary(tags, uniquingKeysWith: { first, _ in first })
        guard let policyText = values["p"] else {
            throw DMARCSyntaxError("The record has no policy: add p=none, p=quarantine or p=reject right after v=DMARC1.")
        }
        guard let policy = Policy(rawValue: policyText.lowercased()) else {
            throw DMARCSyntaxError("p=\(policyText) is not a policy; use none, quarantine or reject.")
        }
        self.policy = policy
        if let text = values["sp"] {
            guard let subdomainPolicy = Policy(rawValue: text.lowercased()) else {
                throw DMARCSyntaxError("sp=\(text) is not a policy; use none, quarantine or reject.")
            }
            self.subdomainPolicy = subdomainPolicy
        } else {
            subdomainPolicy = nil
        }
        func alignment(_ tag: String) throws(DMARCSyntaxError) -> Alignment {
            guard let text = values[tag] else { return .relaxed }
            guard let value = Alignment(rawValue: text.lowercased()) else { throw DMARCSyntaxError("\(tag)=\(text) must be r (relaxed) or s (strict).") }
            return value
        }
        dkimAlignment = try alignment("adkim")
        spfAlignment = try alignment("aspf")
        if let text = values["pct"] {
            guard let value = Int(text), (0...100).contains(value) else { throw DMARCSyntaxError("pct=\(text) must be a whole number from 0 to 100.") }
            percentage = value
        } else {
            percentage = 100
        }
        aggregateReports = []
        warnings = []
        if let text = values["rua"] {
            for uri in text.split(separator: ",").map({ String($0.trimmingWhitespace) }) {
                guard uri.lowercased().hasPrefix("mailto:"), uri.count > "mailto:".count else {
                    throw DMARCSyntaxError("rua= holds '\(uri)', which is not a mailto: address.")
                }
                aggregateReports.append(uri)
            }
        } else {
            warnings.append("The record asks for no aggregate reports (rua=): you will not learn who sends as your domain.")
        }
        let known: Set<String> = ["v", "p", "sp", "adkim", "aspf", "pct", "rua", "ruf", "fo", "rf", "ri", "np", "psd", "t"]
        for (name, _) in tags where !known.contains(name) {
            warnings.append("The unknown tag \(name)= is ignored.")
        }
    }
}

public struct DMARCSyntaxError: Error, Sendable, Equatable, CustomStringConvertible {
    public var description: String

    public init(_ description: String) {
        self.description = description
    }
}

extension StringProtocol {
    var trimmingWhitespace: Substring {
        let text = Substring(self)
        guard let first = text.firstIndex(where: { !$0.isWhitespace }), let last = text.lastIndex(where: { !$0.isWhitespace }) else {
            return ""
        }
        return text[first...last]
    }
}
