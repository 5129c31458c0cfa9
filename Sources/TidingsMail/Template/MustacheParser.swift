/// Turns template source into `MustacheTemplate.Node`s, or the first syntax error with its
/// line and column (both 1-based, columns counted in characters).
struct MustacheParser {
    typealias Node = MustacheTemplate.Node
    typealias Name = MustacheTemplate.Name
    typealias SyntaxError = MustacheTemplate.SyntaxError

    private let characters: [Character]
    /// Index of the first character of each line.
    private let lineStarts: [Int]

    private struct OpenSection {
        var name: Name
        var inverted: Bool
        var nodes: [Node] = []
        var index: Int
    }

    init(_ source: String) {
        characters = Array(source)
        var starts = [0]
        for (index, character) in characters.enumerated() where character.isNewline {
            starts.append(index + 1)
        }
        lineStarts = starts
    }

    mutating func parse() throws(SyntaxError) -> [Node] {
        var root: [Node] = []
        var open: [OpenSection] = []
        var text = ""
        var index = 0

        func emit(_ node: Node) {
            if open.isEmpty { root.append(node) } else { open[open.count - 1].nodes.append(node) }
        }
        func flushText() {
            guard !text.isEmpty else { return }
            emit(.text(text))
            text = ""
        }

        while index < characters.count {
            guard characters[index] == "{", index + 1 < characters.count, characters[index + 1] == "{" else {
                text.append(characters[index])
                index += 1
                continue
            }
            let tagStart = index
            let tag = try readTag(at: tagStart)
            index = tag.end

            if tag.sigil.takesWholeLine, let standalone = standaloneRange(tagStart: tagStart, tagEnd: tag.end) {
                // Drop the line's leading blanks (already in `text`) and its end.
                text.removeLast(tagStart - standalone.lineStart)
                index = standalone.nextLine
            }

            switch tag.sigil {
            case .comment:
                continue
            case .variable, .raw:
                flushText()
                emit(.variable(try name(tag.content, at: tag.contentStart), raw: tag.sigil == .raw))
            case .section, .inverted:
                flushText()
                guard open.count < MustacheTemplate.maxDepth else {
                    throw error(at: tagStart, "sections nest deeper than \(MustacheTemplate.maxDepth) levels")
                }
                let sectionName = try name(tag.content, at: tag.contentStart)
                open.append(OpenSection(name: sectionName, inverted: tag.sigil == .inverted, index: tagStart))
            case .close:
                flushText()
                let closing = try name(tag.content, at: tag.contentStart)
                guard let section = open.popLast() else {
                    throw error(at: tagStart, "{{/\(closing.written)}} closes a section that was never opened")
                }
                guard section.name == closing else {
                    let (line, column) = position(of: section.index)
                    throw error(
                        at: tagStart,
                        "{{/\(closing.written)}} does not close {{\(section.inverted ? "^" : "#")\(section.name.written)}}, opened at line \(line), column \(column)"
                    )
                }
                emit(.section(section.name, inverted: section.inverted, body: section.nodes))
            }
        }
        flushText()
        if let unclosed = open.last {
            throw error(
                at: unclosed.index,
                "{{\(unclosed.inverted ? "^" : "#")\(unclosed.name.written)}} is never closed with {{/\(unclosed.name.written)}}"
            )
        }
        return root
    }

    private enum Sigil: Equatable {
        case variable, raw, section, inverted, close, comment

        /// Tags that produce no output of their own and may stand alone on a line.
        var takesWholeLine: Bool {
            switch self {
            case .section, .inverted, .close, .comment: true
            case .variable, .raw: false
            }
        }
    }

    private struct Tag {
        var sigil: Sigil
        var content: String
        var contentStart: Int
        var end: Int
    }

    /// Reads the tag that starts at `start` (at its `{{`).
    private func readTag(at start: Int) throws(SyntaxError) -> Tag {
        var index = start + 2
        let triple = index < characters.count && characters[index] == "{"
        if triple { index += 1 }
        let closing: [Character] = triple ? ["}", "}", "}"] : ["}", "}"]
        guard let end = find(closing, from: index) else {
            throw error(at: start, "\(triple ? "{{{" : "{{") is never closed with \(String(closing))")
        }
        var content = String(characters[index..<end])
        var contentStart = index
        // Leading blanks, then the sigil, then the name.
        let leading = content.prefix(while: { $0 == " " || $0 == "\t" }).count
        content.removeFirst(leading)
        contentStart += leading
        let sigil: Sigil
        if triple {
            sigil = .raw
        } else {
            switch content.first {
            case "#": sigil = .section
            case "^": sigil = .inverted
            case "/": sigil = .close
            case "&": sigil = .raw
            case "!": sigil = .comment
            case ">": throw error(at: start, "partials ({{> name}}) are not supported")
            case "=": throw error(at: start, "changing delimiters ({{=…=}}) is not supported")
            case "{": throw error(at: start, "a tag cannot start with '{' here; use {{{ name }}} for raw output")
            default: sigil = .variable
            }
            if sigil != .variable {
                content.removeFirst()
                contentStart += 1
            }
        }
        if sigil != .comment, content.contains(where: { $0 == "{" || $0 == "}" }) {
            throw error(at: start, "a tag may not contain '{' or '}'")
        }
        return Tag(sigil: sigil, content: content, contentStart: contentStart, end: end + closing.count)
    }

    /// A name: `.`, or dotted parts of letters, digits, `_` and `-`.
    private func name(_ content: String, at contentStart: Int) throws(SyntaxError) -> Name {
        let trimmed = content.trimmingBlanks()
        guard !trimmed.isEmpty else { throw error(at: contentStart, "the tag has no name") }
        guard trimmed.count <= MustacheTemplate.maxNameLength else {
            throw error(at: contentStart, "the name is longer than \(MustacheTemplate.maxNameLength) characters")
        }
        if trimmed == "." { return Name(parts: []) }
        let parts = trimmed.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        for part in parts {
            guard !part.isEmpty else { throw error(at: contentStart, "'\(trimmed)' has an empty part between dots") }
            guard part.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" }) else {
                throw error(at: contentStart, "'\(trimmed)' is not a name: use letters, digits, '_', '-' and dots")
            }
        }
        return Name(parts: parts)
    }

    /// When the tag is the only thing on its line but blanks: where the line starts and where
    /// the next one does.
    private func standaloneRange(tagStart: Int, tagEnd: Int) -> (lineStart: Int, nextLine: Int)? {
        var lineStart = tagStart
        while lineStart > 0, !characters[lineStart - 1].isNewline {
            guard characters[lineStart - 1] == " " || characters[lineStart - 1] == "\t" else { return nil }
            lineStart -= 1
        }
        var after = tagEnd
        while after < characters.count, !characters[after].isNewline {
            guard characters[after] == " " || characters[after] == "\t" else { return nil }
            after += 1
        }
        return (lineStart, after < characters.count ? after + 1 : after)
    }

    private func find(_ needle: [Character], from start: Int) -> Int? {
        var index = start
        while index + needle.count <= characters.count {
            if characters[index] == needle[0], Array(characters[index..<(index + needle.count)]) == needle { return index }
            index += 1
        }
        return nil
    }

    private func position(of index: Int) -> (line: Int, column: Int) {
        // The last line start at or before the index.
        var low = 0, high = lineStarts.count - 1
        while low < high {
            let middle = (low + high + 1) / 2
            if lineStarts[middle] <= index { low = middle } else { high = middle - 1 }
        }
        return (low + 1, index - lineStarts[low] + 1)
    }

    private func error(at index: Int, _ reason: String) -> SyntaxError {
        let (line, column) = position(of: index)
        return SyntaxError(line: line, column: column, reason: reason)
    }
}

extension String {
    fileprivate func trimmingBlanks() -> String {
        let blank: (Character) -> Bool = { $0 == " " || $0 == "\t" }
        guard let first = firstIndex(where: { !blank($0) }), let last = lastIndex(where: { !blank($0) }) else { return "" }
        return String(self[first...last])
    }
}
