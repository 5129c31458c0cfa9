import TidingsDomain

/// A template in Tidings' Mustache dialect, parsed once and rendered many times.
///
/// - `{{ name }}` inserts a value, HTML-escaped; `{{{ name }}}` and `{{& name }}` insert it raw.
/// - `{{# name }}…{{/ name }}` renders its content for a truthy value: once for a scalar or an
///   object (which becomes the innermost context), once per item for a list.
/// - `{{^ name }}…{{/ name }}` renders its content when the value is missing, null, false, an
///   empty string or an empty list: the fallback, as in `Hi {{ name }}{{^ name }}there{{/ name }}`.
/// - Dotted names (`contact.first_name`) look into objects; `.` is the current item.
/// - `{{! … }}` is a comment. A section, inverted-section, closing or comment tag alone on its
///   line takes the line with it, so templates can be laid out readably.
/// - A missing name renders as nothing; it is never an error at send time. Everything that is
///   wrong with the template itself is found when it is parsed, with its line and column.
public struct MustacheTemplate: Sendable, Equatable {
    indirect enum Node: Sendable, Equatable {
        case text(String)
        case variable(Name, raw: Bool)
        case section(Name, inverted: Bool, body: [Node])
    }

    /// A name as written: its dotted parts, or `.` for the current item.
    struct Name: Sendable, Equatable {
        var parts: [String]
        var written: String { parts.isEmpty ? "." : parts.joined(separator: ".") }
    }

    public struct SyntaxError: Error, Equatable, CustomStringConvertible, Sendable {
        /// 1-based line and column of the tag (or place) at fault.
        public var line: Int
        public var column: Int
        public var reason: String

        public var description: String { "line \(line), column \(column): \(reason)" }
    }

    let nodes: [Node]

    /// The longest name a tag may hold, and how deep sections may nest.
    static let maxNameLength = 200
    static let maxDepth = 32

    public init(_ source: String) throws(SyntaxError) {
        var parser = MustacheParser(source)
        nodes = try parser.parse()
    }

    /// Every name the template uses, as written (`contact.first_name`, `items`), in order of
    /// first use; `.` is left out.
    public var variables: [String] {
        var seen = Set<String>()
        var names: [String] = []
        func walk(_ nodes: [Node]) {
            for node in nodes {
                switch node {
                case .text:
                    break
                case .variable(let name, _):
                    if !name.parts.isEmpty, seen.insert(name.written).inserted { names.append(name.written) }
                case .section(let name, _, let body):
                    if !name.parts.isEmpty, seen.insert(name.written).inserted { names.append(name.written) }
                    walk(body)
                }
            }
        }
        walk(nodes)
        return names
    }

    /// How inserted values are made safe for where the result goes.
    public enum Escaping: Sendable {
        /// HTML bodies: `& < > " '` of `{{ }}` values are escaped; raw tags insert as is.
        case html
        /// Plain text bodies: nothing is escaped.
        case none
        /// Header fields (subject, display names): nothing is escaped, but every control
        /// character — CR and LF above all — becomes a space, in the template's own text and in
        /// every value, raw or not, so no value can ever start a new header line.
        case headerField
    }

    public func render(_ context: TemplateValue, escaping: Escaping) -> String {
        var output = ""
        render(nodes, stack: [context], escaping: escaping, into: &output)
        if case .headerField = escaping {
            return String(String.UnicodeScalarView(output.unicodeScalars.map { Self.isControl($0) ? " " : $0 }))
        }
        return output
    }

    private func render(_ nodes: [Node], stack: [TemplateValue], escaping: Escaping, into output: inout String) {
        for node in nodes {
            switch node {
            case .text(let text):
                output += text
            case .variable(let name, let raw):
                let text = Self.resolve(name, in: stack)?.text ?? ""
                if !raw, case .html = escaping {
                    HTMLEscaping.append(text, to: &output)
                } else {
                    output += text
                }
            case .section(let name, let inverted, let body):
                let value = Self.resolve(name, in: stack)
                let truthy = value?.isTruthy ?? false
                if inverted {
                    if !truthy { render(body, stack: stack, escaping: escaping, into: &output) }
                    continue
                }
                guard truthy, let value else { continue }
                if case .list(let items) = value {
                    for item in items { render(body, stack: stack + [item], escaping: escaping, into: &output) }
                } else {
                    render(body, stack: stack + [value], escaping: escaping, into: &output)
                }
            }
        }
    }

    /// The first part is looked up from the innermost context outwards; the rest within it.
    static func resolve(_ name: Name, in stack: [TemplateValue]) -> TemplateValue? {
        guard let first = name.parts.first else { return stack.last }
        for context in stack.reversed() {
            guard case .object(let fields) = context, let found = fields[first] else { continue }
            var value = found
            for part in name.parts.dropFirst() {
                guard case .object(let inner) = value, let next = inner[part] else { return nil }
                value = next
            }
            return value
        }
        return nil
    }

    static func isControl(_ scalar: Unicode.Scalar) -> Bool {
        scalar.value < 0x20 || scalar.value == 0x7F || (0x80...0x9F).contains(scalar.value)
            || scalar.value == 0x2028 || scalar.value == 0x2029
    }
}

/// What a template is rendered with: JSON-like values.
public indirect enum TemplateValue: Sendable, Equatable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case list([TemplateValue])
    case object([String: TemplateValue])

    var isTruthy: Bool {
        switch self {
        case .null: false
        case .bool(let value): value
        case .number: true
        case .string(let value): !value.isEmpty
        case .list(let items): !items.isEmpty
        case .object: true
        }
    }

    /// How a value reads when inserted: whole numbers without a decimal point; lists and
    /// objects insert nothing.
    var text: String {
        switch self {
        case .null, .list, .object: ""
        case .bool(let value): value ? "true" : "false"
        case .string(let value): value
        case .number(let value):
            if value.rounded() == value, abs(value) < 1e15 { String(Int64(value)) } else { String(value) }
        }
    }
}
