import Testing
@testable import TidingsMail

@Suite("Text from HTML")
struct HTMLTextTests {
    @Test("Paragraphs, breaks and list items become lines; links keep their target")
    func readableText() {
        let html = """
            <html><head><title>Welcome</title><style>p { color: red; }</style></head>
            <body>
              <h1>Hi   Ada,</h1>
              <p>Thanks for <b>joining</b>&nbsp;us.<br>Your plan: <i>Pro</i> &amp; more.</p>
              <!-- tracking > pixel -->
              <ul><li>First</li><li>Second &#8211; <a href="https://acme.test/docs?a=1&amp;b=2">read the docs</a></li></ul>
              <p><a href="https://acme.test">https://acme.test</a> · <a href="mailto:help@acme.test">help@acme.test</a> · <a href="#top">top</a></p>
              <img src="x.png" alt="Acme logo"><script>alert(1)</script>
            </body></html>
            """
        #expect(HTMLText.plainText(fromHTML: html) == """
            Hi Ada,

            Thanks for joining us.
            Your plan: Pro & more.

            - First
            - Second – read the docs (https://acme.test/docs?a=1&b=2)

            https://acme.test · help@acme.test · top

            Acme logo
            """)
    }

    @Test("Attributes are found whatever their quoting, and not inside other names")
    func attributes() {
        #expect(HTMLText.attribute("href", in: #"a data-href="no" href='yes'"#[...]) == "yes")
        #expect(HTMLText.attribute("href", in: "a href=bare title=x"[...]) == "bare")
        #expect(HTMLText.attribute("href", in: "a title=x"[...]) == nil)
    }

    @Test("Text without tags, unknown entities and an unclosed tag pass through")
    func leniency() {
        #expect(HTMLText.plainText(fromHTML: "Just   text &unknown; &#x1F600; 3 < 4") == "Just text &unknown; 😀 3 < 4")
        #expect(HTMLText.plainText(fromHTML: "") == "")
    }
}
