import Foundation

/// The plain-text part of a message, derived from its HTML when a template has no text of
/// its own: readable paragraphs, list items on their own lines, and every link kept as
/// `label (URL)` so a reader of the text part can still follow it.
public enum HTMLText {
    public static func plainText(fromHTML html: String) -> String {
        var output = ""
        var index = html.startIndex
        /// Text of an open `<a>`, with its target.
        var link: (href: String, start: String.Index)?
        while index < html.endIndex {
            guard html[index] == "<" else {
                let next = html[index...].firstIndex(of: "<") ?? html.endIndex
                appendCollapsed(decodeEntities(String(html[index..<next])), to: &output)
                index = next
                continue
            }
            if html[index...].hasPrefix("<!--") {
                // A comment may hold '>': it ends at the first "-->".
                index = html[index...].range(of: "-->")?.upperBound ?? html.endIndex
                continue
            }
            guard let close = html[index...].firstIndex(of: ">") else {
                appendCollapsed(decodeEntities(String(html[index...])), to: &output)
                break
            }
            let tag = html[html.index(after: index)..<close]
            index = html.index(after: close)
            let isClosing = tag.hasPrefix("/")
            let name = tag.drop(while: { $0 == "/" }).prefix(while: { $0.isLetter || $0.isNumber }).lowercased()
            switch name {
            case "head", "style", "script", "title":
                // Everything up to the closing tag is not content.
                if !isClosing, let end = html[index...].range(of: "</\(name)", options: .caseInsensitive) {
                    index = html[end.upperBound...].firstIndex(of: ">").map { html.index(after: $0) } ?? html.endIndex
                }
            case "br":
                output += "\n"
            case "p", "div", "h1", "h2", "h3", "h4", "h5", "h6", "table", "blockquote", "section", "article", "header", "footer":
                output += "\n\n"
            case "tr", "ul", "ol":
                output += "\n"
            case "td", "th":
                if isClosing { output += " " }
            case "li":
                if !isClosing { output += "\n- " }
            case "hr":
                output += "\n\n---\n\n"
            case "img":
                if let alt = attribute("alt", in: tag), !alt.isEmpty { appendCollapsed(alt, to: &output) }
            case "a":
                if isClosing {
                    if let open = link {
                        let label = output[open.start...].trimmingCharacters(in: .whitespaces)
                        if Self.shouldShow(open.href, label: label) { output += " (\(open.href))" }
                    }
                    link = nil
                } else if let href = attribute("href", in: tag) {
                    link = (href, output.endIndex)
                }
            default:
                break
            }
        }
        return tidy(output)
    }

    /// A link's target is shown unless the label already says it (or it goes nowhere).
    static func shouldShow(_ href: String, label: String) -> Bool {
        let target = href.trimmingCharacters(in: .whitespaces)
        guard !target.isEmpty, !target.hasPrefix("#"), !target.lowercased().hasPrefix("javascript:") else { return false }
        let bare = target.hasPrefix("mailto:") ? String(target.dropFirst("mailto:".count)) : target
        return label != target && label != bare
    }

    /// The value of `name="…"` (or single-quoted, or bare) in a tag, entities decoded.
    static func attribute(_ name: String, in tag: Substring) -> String? {
        let lower = tag.lowercased()
        var search = lower.startIndex
        while let found = lower[search...].range(of: name) {
            search = found.upperBound
            // The name must stand alone (` href=`), not end another (`data-href=`).
            let before = found.lowerBound == lower.startIndex ? " " : lower[lower.index(before: found.lowerBound)]
            guard before == " " || before == "\t" || before == "\n" else { continue }
            var rest = tag[tag.index(tag.startIndex, offsetBy: lower.distance(from: lower.startIndex, to: found.upperBound))...]
            rest = rest.drop(while: { $0 == " " })
            guard rest.first == "=" else { continue }
            rest = rest.dropFirst().drop(while: { $0 == " " })
            let value: Substring
            if let quote = rest.first, quote == "\"" || quote == "'" {
                value = rest.dropFirst().prefix(while: { $0 != quote })
            } else {
                value = rest.prefix(while: { !$0.isWhitespace && $0 != "/" })
            }
            return decodeEntities(String(value))
        }
        return nil
    }

    /// HTML's whitespace collapsing: runs of blanks become one space.
    static func appendCollapsed(_ text: String, to output: inout String) {
        for character in text {
            if character.isWhitespace && character != "\u{00A0}" {
                if let last = output.last, !last.isWhitespace { output.append(" ") }
            } else {
                output.append(character == "\u{00A0}" ? " " : character)
            }
        }
    }

    /// No blanks around line ends, at most one empty line in a row, none at the ends.
    static func tidy(_ text: String) -> String {
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map { line in
            line.trimmingCharacters(in: .whitespaces)
        }
        var result: [String] = []
        for line in lines.indices {
            if lines[line].isEmpty, result.last?.isEmpty ?? true { continue }
            result.append(lines[line])
        }
        while result.last?.isEmpty == true { result.removeLast() }
        lines = result
        return lines.joined(separator: "\n")
    }

    static let namedEntities: [String: String] = [
        "amp": "&", "lt": "<", "gt": ">", "quot": "\"", "apos": "'", "nbsp": "\u{00A0}",
        "copy": "©", "reg": "®", "trade": "™", "hellip": "…", "mdash": "—", "ndash": "–",
        "lsquo": "‘", "rsquo": "’", "ldquo": "“", "rdquo": "”", "euro": "€", "middot": "·",
    ]

    static func decodeEntities(_ text: String) -> String {
        guard text.contains("&") else { return text }
        var output = ""
        var index = text.startIndex
        while index < text.endIndex {
            guard text[index] == "&", let semicolon = text[index...].prefix(12).firstIndex(of: ";") else {
                output.append(text[index])
                index = text.index(after: index)
                continue
            }
            let entity = text[text.index(after: index)..<semicolon]
            var decoded: String?
            if entity.hasPrefix("#x") || entity.hasPrefix("#X") {
                decoded = UInt32(entity.dropFirst(2), radix: 16).flatMap(Unicode.Scalar.init).map { String($0) }
            } else if entity.hasPrefix("#") {
                decoded = UInt32(entity.dropFirst()).flatMap(Unicode.Scalar.init).map { String($0) }
            } else {
                decoded = namedEntities[String(entity)]
            }
            if let decoded {
                output += decoded
                index = text.index(after: semicolon)
            } else {
                output.append("&")
                index = text.index(after: index)
            }
        }
        return output
    }
}

