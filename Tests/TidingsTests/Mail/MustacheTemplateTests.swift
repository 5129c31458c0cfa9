import Testing
@testable import TidingsMail

@Suite("Mustache templates")
struct MustacheTemplateTests {
    let context = TemplateValue.object([
        "name": .string("Ada <Lovelace> & \"Co\""),
        "empty": .string(""),
        "count": .number(3),
        "ratio": .number(0.5),
        "vip": .bool(true),
        "off": .bool(false),
        "none": .null,
        "items": .list([.object(["title": .string("First")]), .object(["title": .string("Second")])]),
        "tags": .list([.string("a"), .string("b")]),
        "nothing": .list([]),
        "contact": .object(["first_name": .string("Ada"), "plan": .object(["name": .string("pro")])]),
    ])

    func render(_ source: String, _ escaping: MustacheTemplate.Escaping = .html) throws -> String {
        try MustacheTemplate(source).render(context, escaping: escaping)
    }

    @Test("Variables are HTML-escaped; triple and ampersand tags are raw")
    func escaping() throws {
        #expect(try render("Hi {{ name }}!") == "Hi Ada &lt;Lovelace&gt; &amp; &quot;Co&quot;!")
        #expect(try render("{{{name}}}|{{& name }}") == "Ada <Lovelace> & \"Co\"|Ada <Lovelace> & \"Co\"")
        #expect(try render("{{ name }}", .none) == "Ada <Lovelace> & \"Co\"")
        #expect(try render("{{count}} {{ratio}} {{vip}} {{off}} [{{none}}] [{{missing}}] [{{items}}]") == "3 0.5 true false [] [] []")
    }

    @Test("Dotted names look into objects, from the innermost context outwards")
    func dottedNames() throws {
        #expect(try render("{{contact.first_name}} on {{contact.plan.name}}; {{contact.plan.missing}}{{contact.first_name.x}}") == "Ada on pro; ")
        #expect(try render("{{#contact}}{{first_name}} / {{count}}{{/contact}}") == "Ada / 3")
    }

    @Test("Sections repeat for lists, render once for truthy values, and inverted sections are the fallback")
    func sections() throws {
        #expect(try render("{{#items}}<{{title}}>{{/items}}") == "<First><Second>")
        #expect(try render("{{#tags}}{{.}},{{/tags}}") == "a,b,")
        #expect(try render("{{#vip}}VIP{{/vip}}{{#off}}no{{/off}}{{#nothing}}no{{/nothing}}{{#missing}}no{{/missing}}") == "VIP")
        #expect(try render("Hi {{name}}{{^name}}there{{/name}}", .none) == "Hi Ada <Lovelace> & \"Co\"")
        #expect(try render("Hi {{empty}}{{^empty}}there{{/empty}}, {{^missing}}friend{{/missing}}{{^none}}!{{/none}}{{^vip}}x{{/vip}}") == "Hi there, friend!")
    }

    @Test("Section, closing and comment tags alone on a line take the line with them")
    func standaloneLines() throws {
        let source = """
            <ul>
              {{#items}}
              <li>{{title}}</li>
              {{/items}}
              {{! a comment }}
            </ul>
            """
        #expect(try render(source) == "<ul>\n  <li>First</li>\n  <li>Second</li>\n</ul>")
        #expect(try render("a {{#vip}}b{{/vip}} c\n") == "a b c\n", "tags sharing a line with text stay inline")
        #expect(try render("{{#vip}}\r\nyes\r\n{{/vip}}\r\n") == "yes\r\n")
    }

    @Test("A header field never gets a line break, from the template or from a value")
    func headerFields() throws {
        let hostile = TemplateValue.object(["name": .string("Ada\r\nBcc: victim@example.com"), "raw": .string("x\ny\u{2028}z\u{0}")])
        let subject = try MustacheTemplate("Hello {{name}} {{{raw}}}\r\nX-Injected: 1").render(hostile, escaping: .headerField)
        #expect(!subject.contains("\r") && !subject.contains("\n") && !subject.contains("\u{2028}") && !subject.contains("\u{0}"))
        #expect(subject == "Hello Ada  Bcc: victim@example.com x y z   X-Injected: 1")
    }

    @Test("The variables a template uses are listed in order, without duplicates")
    func variables() throws {
        let template = try MustacheTemplate("{{name}} {{#items}}{{title}}{{.}}{{/items}}{{^contact.plan}}{{name}}{{/contact.plan}}{{{unsubscribe_link}}}{{! x }}")
        #expect(template.variables == ["name", "items", "title", "contact.plan", "unsubscribe_link"])
    }

    @Test("Syntax errors name the line and column of the tag at fault", arguments: [
        ("Hi {{ name", 1, 4, "never closed"),
        ("a\nb {{{ raw }}", 2, 3, "never closed with }}}"),
        ("{{#items}}\n  {{title}}\n", 1, 1, "{{#items}} is never closed"),
        ("x\n{{#a}}{{/b}}", 2, 7, "does not close {{#a}}, opened at line 2, column 1"),
        ("{{/a}}", 1, 1, "never opened"),
        ("{{ }}", 1, 4, "no name"),
        ("{{first name}}", 1, 3, "not a name"),
        ("{{a..b}}", 1, 3, "empty part"),
        ("ok\n\n   {{> footer}}", 3, 4, "partials"),
        ("{{=<% %>=}}", 1, 1, "delimiters"),
        ("{{ a{b }}", 1, 1, "'{' or '}'"),
    ])
    func syntaxErrors(source: String, line: Int, column: Int, reason: String) {
        do {
            _ = try MustacheTemplate(source)
            Issue.record("\(source) parsed")
        } catch {
            #expect(error.line == line && error.column == column, "\(error)")
            #expect(error.reason.contains(reason), "\(error)")
        }
    }

    @Test("Nesting is limited, and text that only looks like a tag is kept")
    func limits() throws {
        let deep = String(repeating: "{{#a}}", count: 40) + String(repeating: "{{/a}}", count: 40)
        #expect(throws: MustacheTemplate.SyntaxError.self) { try MustacheTemplate(deep) }
        #expect(try render("a { b } {c} }} {") == "a { b } {c} }} {")
    }
}
