import Testing
@testable import TidingsMail

@Suite("Tracked HTML: links and the open pixel")
struct TrackedHTMLTests {
    static let skip = ["https://mail.acme.test/u/", "https://mail.acme.test/t/"]

    /// Replaces each tracked link with `T<n>`, numbering them in order.
    static func rewrite(_ html: String) -> (html: String, urls: [String]) {
        var urls: [String] = []
        let result = TrackedHTML.rewriteLinks(html, skipping: skip) { url in
            urls.append(url)
            return "T\(urls.count)"
        }
        return (result, urls)
    }

    @Test("http and https links are replaced; mailto, tel, fragments, relative links and the unsubscribe link are not")
    func whatIsTracked() {
        let html = """
            <p><a href="https://acme.test/a">A</a> <A HREF='http://acme.test/b'>B</A> <a class=x href=https://acme.test/c>C</a>
            <a href="mailto:help@acme.test">mail</a> <a href="tel:+4930123">call</a> <a href="#top">top</a> <a href="/relative">r</a>
            <a href="https://mail.acme.test/u/tok123">unsubscribe</a> <a href="https://mail.acme.test/t/c/x">tracked</a>
            <a name="anchor">no href</a> <a data-href="https://acme.test/not" href="javascript:void(0)">js</a></p>
            """
        let (result, urls) = Self.rewrite(html)
        #expect(urls == ["https://acme.test/a", "http://acme.test/b", "https://acme.test/c"])
        #expect(result.contains("<a href=\"T1\">A</a>") && result.contains("<A HREF=\"T2\">B</A>") && result.contains("<a class=x href=\"T3\">C</a>"))
        for kept in ["mailto:help@acme.test", "tel:+4930123", "href=\"#top\"", "/relative", "https://mail.acme.test/u/tok123",
                     "https://mail.acme.test/t/c/x", "data-href=\"https://acme.test/not\"", "javascript:void(0)"] {
            #expect(result.contains(kept), "\(kept) is left")
        }
    }

    @Test("A link's URL is the one a browser follows: entities decoded, line breaks dropped, spaces and non-ASCII encoded")
    func urlsAsFollowed() {
        let (_, urls) = Self.rewrite("""
            <a href="https://acme.test/o?id=7&amp;ref=mail">1</a><a href=" https://acme.test/x\ny ">2</a>\
            <a href="https://acme.test/caf&#233; menu">3</a><a href='HTTPS://ACME.TEST/'>4</a>
            """)
        #expect(urls == ["https://acme.test/o?id=7&ref=mail", "https://acme.test/xy", "https://acme.test/caf%C3%A9%20menu", "HTTPS://ACME.TEST/"])
    }

    @Test("Comments, scripts and styles are not markup; quoted '>' does not end a tag")
    func notMarkup() {
        let (result, urls) = Self.rewrite("""
            <!-- <a href="https://acme.test/commented">x</a> --><style>a[href="https://acme.test/css"]{}</style>\
            <script>var s = '<a href="https://acme.test/js">';</script><a title="a > b" href="https://acme.test/real">r</a>
            """)
        #expect(urls == ["https://acme.test/real"])
        #expect(result.contains("https://acme.test/commented") && result.contains("https://acme.test/js"))
    }

    @Test("Broken markup ends the scan without harm")
    func brokenMarkup() {
        for html in ["<a href=\"https://acme.test/unterminated", "<a href=", "<a", "<", "<a href='x' <<< >", "<!-- never closed <a href=\"https://x.test/\">"] {
            let (result, urls) = Self.rewrite(html)
            #expect(urls.isEmpty && result == html, "\(html)")
        }
    }

    @Test("The pixel goes before </body>, or at the end without one; its URL is escaped")
    func pixel() {
        let html = TrackedHTML.addPixel("<html><body><p>Hi</p></BODY></html>", source: "https://mail.acme.test/t/o/a.b")
        #expect(html == "<html><body><p>Hi</p><img src=\"https://mail.acme.test/t/o/a.b\" width=\"1\" height=\"1\" alt=\"\"></BODY></html>")
        #expect(TrackedHTML.addPixel("<p>Hi</p>", source: "x\"y") == "<p>Hi</p><img src=\"x&quot;y\" width=\"1\" height=\"1\" alt=\"\">")
    }
}
