import Foundation

/// Open and click tracking applied to a rendered HTML part: links through tracked URLs and
/// an open pixel. Pure text work; the URLs to put in come from the caller.
///
/// Only `href` values of `<a>` elements that are `http:` or `https:` URLs are links to
/// track; `mailto:`, `tel:`, fragments (`#top`), relative and other URLs, and URLs the
/// caller skips (its own unsubscribe and tracking URLs) stay as they are. Comments and the
/// contents of `<script>` and `<style>` are never read as markup. The text part is not
/// touched: it keeps the original links.
public enum TrackedHTML {
    /// Replaces the tracked links of `html`. `replacement` gets each link's URL as a
    /// browser would follow it (entities decoded, tabs and line breaks removed, spaces and
    /// non-ASCII percent-encoded) and returns the URL to put in, or `nil` to leave that link.
    public static func rewriteLinks(_ html: String, skipping prefixes: [String], _ replacement: (String) -> String?) -> String {
        var bytes = Array(html.utf8)
        // Replaced from the end, so earlier ranges keep their offsets.
        var edits: [(range: Range<Int>, text: String)] = []
        for link in links(in: bytes) {
            let raw = String(decoding: bytes[link.value], as: UTF8.self)
            guard let url = trackableURL(raw, skipping: prefixes), let target = replacement(url) else { continue }
            let quoted = "\"" + escapeAttribute(target) + "\""
            edits.append((link.quoted ? (link.value.lowerBound - 1)..<(link.value.upperBound + 1) : link.value, quoted))
        }
        for edit in edits.reversed() {
            bytes.replaceSubrange(edit.range, with: Array(edit.text.utf8))
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The links `rewriteLinks` would replace, in order, as it passes them to `replacement`.
    public static func trackableLinks(in html: String, skipping prefixes: [String]) -> [String] {
        let bytes = Array(html.utf8)
        return links(in: bytes).compactMap { trackableURL(String(decoding: bytes[$0.value], as: UTF8.self), skipping: prefixes) }
    }

    /// Puts a 1×1 image loading `source` just before `</body>` (or at the end, without one).
    public static func addPixel(_ html: String, source: String) -> String {
        let pixel = "<img src=\"\(escapeAttribute(source))\" width=\"1\" height=\"1\" alt=\"\">"
        guard let body = html.range(of: "</body", options: [.caseInsensitive, .backwards]) else { return html + pixel }
        var result = html
        result.insert(contentsOf: pixel, at: body.lowerBound)
        return result
    }

    // MARK: Scanning

    struct Link {
        /// The value's bytes (inside the quotes, if any).
        var value: Range<Int>
        var quoted: Bool
    }

    /// The `href` of every `<a>` element, in document order.
    static func links(in bytes: [UInt8]) -> [Link] {
        var found: [Link] = []
        var index = 0
        let count = bytes.count
        while index < count {
            guard bytes[index] == UInt8(ascii: "<") else {
                index += 1
                continue
            }
            if starts(bytes, at: index, with: "<!--") {
                index = find(bytes, "-->", from: index + 4).map { $0 + 3 } ?? count
                continue
            }
            var cursor = index + 1
            let nameStart = cursor
            while cursor < count, isNameByte(bytes[cursor]) { cursor += 1 }
            guard cursor > nameStart else {
                index += 1
                continue
            }
            let name = String(decoding: bytes[nameStart..<cursor], as: UTF8.self).lowercased()
            let (end, href) = attributes(bytes, from: cursor, wanted: "href")
            if name == "a", let href { found.append(href) }
            index = end
            if name == "script" || name == "style" {
                // Raw text up to the closing tag: nothing in it is markup.
                index = findCaseInsensitive(bytes, "</\(name)", from: index) ?? count
            }
        }
        return found
    }

    /// Reads a tag's attributes from `start` to its `>`; returns the offset after the tag and
    /// the first `wanted` attribute's value.
    static func attributes(_ bytes: [UInt8], from start: Int, wanted: String) -> (end: Int, value: Link?) {
        var index = start
        let count = bytes.count
        var value: Link?
        while index < count {
            let byte = bytes[index]
            if byte == UInt8(ascii: ">") { return (index + 1, value) }
            if isSpace(byte) || byte == UInt8(ascii: "/") {
                index += 1
                continue
            }
            let nameStart = index
            while index < count, !isSpace(bytes[index]), bytes[index] != UInt8(ascii: "="), bytes[index] != UInt8(ascii: ">"),
                  bytes[index] != UInt8(ascii: "/") {
                index += 1
            }
            guard index > nameStart else {
                // A stray "=": not an attribute.
                index += 1
                continue
            }
            let name = String(decoding: bytes[nameStart..<index], as: UTF8.self).lowercased()
            var probe = index
            while probe < count, isSpace(bytes[probe]) { probe += 1 }
            guard probe < count, bytes[probe] == UInt8(ascii: "=") else { continue }
            index = probe + 1
            while index < count, isSpace(bytes[index]) { index += 1 }
            guard index < count else { break }
            let link: Link
            if bytes[index] == UInt8(ascii: "\"") || bytes[index] == UInt8(ascii: "'") {
                let quote = bytes[index]
                let valueStart = index + 1
                var valueEnd = valueStart
                while valueEnd < count, bytes[valueEnd] != quote { valueEnd += 1 }
                guard valueEnd < count else { return (count, value) }
                link = Link(value: valueStart..<valueEnd, quoted: true)
                index = valueEnd + 1
            } else {
                let valueStart = index
                while index < count, !isSpace(bytes[index]), bytes[index] != UInt8(ascii: ">") { index += 1 }
                link = Link(value: valueStart..<index, quoted: false)
            }
            if name == wanted, value == nil { value = link }
        }
        return (count, value)
    }

    /// The URL a browser would follow for `href`, when it is an http(s) URL not under a skipped prefix.
    static func trackableURL(_ href: String, skipping prefixes: [String]) -> String? {
        // URL parsing drops tabs and line breaks anywhere, and blanks at either end.
        var scalars = String.UnicodeScalarView()
        scalars.append(contentsOf: HTMLText.decodeEntities(href).unicodeScalars.filter { $0 != "\t" && $0 != "\n" && $0 != "\r" })
        let trimmed = String(scalars).trimmingCharacters(in: .whitespaces.union(.controlCharacters))
        let lower = trimmed.lowercased()
        guard lower.hasPrefix("http://") || lower.hasPrefix("https://"), lower.count > "https://".count else { return nil }
        guard !prefixes.contains(where: { !$0.isEmpty && lower.hasPrefix($0.lowercased()) }) else { return nil }
        var url = ""
        for byte in trimmed.utf8 {
            if (0x21...0x7E).contains(byte) {
                url.unicodeScalars.append(Unicode.Scalar(byte))
            } else {
                url += "%" + String(byte >> 4, radix: 16, uppercase: true) + String(byte & 0xF, radix: 16, uppercase: true)
            }
        }
        return url
    }

    static func escapeAttribute(_ text: String) -> String {
        var output = ""
        for character in text {
            switch character {
            case "&": output += "&amp;"
            case "\"": output += "&quot;"
            case "<": output += "&lt;"
            case ">": output += "&gt;"
            default: output.append(character)
            }
        }
        return output
    }

    static func isSpace(_ byte: UInt8) -> Bool {
        byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0C || byte == 0x0D
    }

    static func isNameByte(_ byte: UInt8) -> Bool {
        (0x41...0x5A).contains(byte) || (0x61...0x7A).contains(byte) || (0x30...0x39).contains(byte) || byte == UInt8(ascii: "-")
    }

    static func starts(_ bytes: [UInt8], at index: Int, with text: String) -> Bool {
        let pattern = Array(text.utf8)
        return index + pattern.count <= bytes.count && Array(bytes[index..<(index + pattern.count)]) == pattern
    }

    static func find(_ bytes: [UInt8], _ text: String, from start: Int) -> Int? {
        let pattern = Array(text.utf8)
        guard !pattern.isEmpty, bytes.count >= pattern.count, start <= bytes.count - pattern.count else { return nil }
        for index in start...(bytes.count - pattern.count) where bytes[index] == pattern[0] {
            if Array(bytes[index..<(index + pattern.count)]) == pattern { return index }
        }
        return nil
    }

    static func findCaseInsensitive(_ bytes: [UInt8], _ text: String, from start: Int) -> Int? {
        let pattern = Array(text.lowercased().utf8)
        guard !pattern.isEmpty, bytes.count >= pattern.count, start <= bytes.count - pattern.count else { return nil }
        func lower(_ byte: UInt8) -> UInt8 { (0x41...0x5A).contains(byte) ? byte + 32 : byte }
        outer: for index in start...(bytes.count - pattern.count) {
            for offset in 0..<pattern.count where lower(bytes[index + offset]) != pattern[offset] { continue outer }
            return index
        }
        return nil
    }
}
