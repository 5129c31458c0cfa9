import Testing
@testable import TidingsDomain

@Suite struct CSVRowReaderTests {
    // MARK: - Helpers

    /// Reads `bytes` fed as the given chunks, then finishes.
    private func read(_ bytes: [UInt8], splitAt splits: [Int] = []) -> [Result<CSVRow, CSVError>] {
        var reader = CSVRowReader()
        var results: [Result<CSVRow, CSVError>] = []
        var start = 0
        for split in splits + [bytes.count] {
            results += reader.feed(bytes[start..<split])
            start = split
        }
        results += reader.finish()
        return results
    }

    private func read(_ text: String) -> [Result<CSVRow, CSVError>] {
        read(Array(text.utf8))
    }

    private func row(_ line: Int, _ fields: String...) -> Result<CSVRow, CSVError> {
        .success(CSVRow(fields: fields, line: line))
    }

    private func error(_ line: Int, _ message: String) -> Result<CSVRow, CSVError> {
        .failure(CSVError(line: line, message: message))
    }

    /// A small file exercising every rule: CRLF, lone CR, empty lines, quotes
    /// spanning lines, escaped quotes, multi-byte characters, a bad row.
    private let tricky: [UInt8] =
        [0xEF, 0xBB, 0xBF]
        + Array("email,name,note\r\n".utf8)
        + Array("ana@example.com,Ana Müller,\"Line one\r\nline \"\"two\"\"\"\r\n".utf8)
        + Array("\n\r\n\r".utf8)
        + Array("bo@example.com,\"Bø, Jr.\",日本語 🙂\r".utf8)
        + Array("bad@example.com,\"closed\"x,\"still\nskipped\"\n".utf8)
        + Array("cy@example.com,,\"\"\n".utf8)
        + Array("dee@example.com,a\"b,\"end".utf8)
        + Array("\"".utf8)

    private var trickyExpected: [Result<CSVRow, CSVError>] {
        [
            row(1, "email", "name", "note"),
            row(2, "ana@example.com", "Ana Müller", "Line one\r\nline \"two\""),
            row(7, "bo@example.com", "Bø, Jr.", "日本語 🙂"),
            error(8, "unexpected character after closing quote"),
            row(10, "cy@example.com", "", ""),
            row(11, "dee@example.com", "a\"b", "end"),
        ]
    }

    // MARK: - Fields and records

    @Test func fieldsAreSeparatedByCommasAndRecordsByNewlines() {
        #expect(read("a,b,c\nd,e,f\n") == [row(1, "a", "b", "c"), row(2, "d", "e", "f")])
    }

    @Test func crlfLfAndLoneCrEachEndARecord() {
        #expect(read("a\r\nb\nc\rd\r\n") == [row(1, "a"), row(2, "b"), row(3, "c"), row(4, "d")])
    }

    @Test func lastRecordWithoutNewlineIsReturnedByFinish() {
        var reader = CSVRowReader()
        #expect(reader.feed(Array("a,b\nc,d".utf8)) == [row(1, "a", "b")])
        #expect(reader.finish() == [row(2, "c", "d")])
    }

    @Test func emptyInputHasNoRecords() {
        #expect(read("") == [])
        #expect(read("\n\r\n\r") == [])
    }

    @Test func emptyFieldsArePreserved() {
        #expect(read("a,,b\n,\nx,\n\"\"\n") == [
            row(1, "a", "", "b"),
            row(2, "", ""),
            row(3, "x", ""),
            row(4, ""),
        ])
        #expect(read("a,") == [row(1, "a", "")])
    }

    @Test func whitespaceIsKeptAndALineOfSpacesIsARecord() {
        #expect(read(" a , b \n \n") == [row(1, " a ", " b "), row(2, " ")])
    }

    // MARK: - Quotes

    @Test func quotedFieldMayContainCommasAndEscapedQuotes() {
        #expect(read("\"a,b\",\"say \"\"hi\"\"\",\"\"\"\"\n") == [row(1, "a,b", "say \"hi\"", "\"")])
    }

    @Test func quotedFieldMaySpanLines() {
        let results = read("\"one\ntwo\",x\r\n\"three\r\nfour\rfive\"\nnext\n")
        #expect(results == [
            row(1, "one\ntwo", "x"),
            row(3, "three\r\nfour\rfive"),
            row(6, "next"),
        ])
    }

    @Test func quoteInsideUnquotedFieldIsKeptLiterally() {
        #expect(read("a\"b,c\"\",5\" tall\n") == [row(1, "a\"b", "c\"\"", "5\" tall")])
    }

    @Test func closingQuoteAtEndOfInputEndsTheRecord() {
        #expect(read("a,\"b\"") == [row(1, "a", "b")])
    }

    @Test func unterminatedQuoteReportsTheLineWhereTheRecordStarted() {
        #expect(read("ok\n\nx,\"never\nclosed\n") == [
            row(1, "ok"),
            error(3, "unterminated quoted field"),
        ])
    }

    @Test func unterminatedQuoteWinsOverAnEarlierErrorInTheSameRecord() {
        let huge = String(repeating: "z", count: CSVRowReader.maxFieldBytes + 10)
        #expect(read("a\n\"\(huge)\nmore") == [row(1, "a"), error(2, "unterminated quoted field")])
    }

    // MARK: - Line numbers

    @Test func lineNumbersCountSkippedEmptyLines() {
        #expect(read("\n\na\r\n\r\n\rb\n\n") == [row(3, "a"), row(6, "b")])
    }

    @Test func crlfInsideQuotesCountsAsOneLine() {
        #expect(read("\"a\r\nb\r\nc\"\nd\n") == [row(1, "a\r\nb\r\nc"), row(4, "d")])
    }

    // MARK: - Bad rows

    @Test func badRowIsReportedAndNextRowStillParses() {
        #expect(read("a,b\n\"x\"y,z\nc,d\n") == [
            row(1, "a", "b"),
            error(2, "unexpected character after closing quote"),
            row(3, "c", "d"),
        ])
    }

    @Test func skippingABadRowStillHonoursQuotedLineBreaks() {
        // The rest of the bad record holds a quoted line break: it must not be
        // mistaken for the end of the record.
        #expect(read("\"x\" ,\"multi\nline\",y\nnext\n") == [
            error(1, "unexpected character after closing quote"),
            row(3, "next"),
        ])
    }

    @Test func spaceAfterClosingQuoteIsAnError() {
        #expect(read("\"a\" \nb\n") == [error(1, "unexpected character after closing quote"), row(2, "b")])
    }

    @Test func onlyTheFirstProblemOfARecordIsReported() {
        #expect(read("\"a\"b,\"c\"d,x\n") == [error(1, "unexpected character after closing quote")])
    }

    // MARK: - UTF-8

    @Test func multibyteCharactersAreDecoded() {
        #expect(read("Zoë,東京,🙂\n") == [row(1, "Zoë", "東京", "🙂")])
    }

    @Test func chunkBoundaryInsideMultibyteCharacterIsHandled() {
        let bytes = Array("é,🙂\n".utf8) // é is 2 bytes, 🙂 is 4
        for split in 1..<bytes.count {
            #expect(read(bytes, splitAt: [split]) == [row(1, "é", "🙂")], "split at \(split)")
        }
        // Every byte of the emoji in its own chunk.
        #expect(read(bytes, splitAt: Array(1..<bytes.count)) == [row(1, "é", "🙂")])
    }

    @Test func invalidUTF8IsAnErrorForThatRecordOnly() {
        let bytes = Array("a\n".utf8) + [0x62, 0xFF, 0x2C, 0x63, 0x0A] + Array("d\n".utf8)
        #expect(read(bytes) == [row(1, "a"), error(2, "field 1 is not valid UTF-8"), row(3, "d")])
    }

    @Test(arguments: [
        [0xC0, 0x80] as [UInt8],  // overlong NUL
        [0xE0, 0x80, 0xAF],       // overlong
        [0xED, 0xA0, 0x80],       // UTF-16 surrogate
        [0xF4, 0x90, 0x80, 0x80], // above U+10FFFF
        [0xE6, 0x97],             // truncated at the end of the field
        [0x80],                   // stray continuation byte
        [0xF5, 0x80, 0x80, 0x80], // invalid lead byte
    ])
    func malformedUTF8SequencesAreRejected(_ sequence: [UInt8]) {
        let bytes = Array("x,".utf8) + sequence + Array(",y\n".utf8)
        #expect(read(bytes) == [error(1, "field 2 is not valid UTF-8")])
    }

    @Test func byteOrderMarkAtStartIsSkipped() {
        let bytes: [UInt8] = [0xEF, 0xBB, 0xBF] + Array("a,b\n".utf8)
        #expect(read(bytes) == [row(1, "a", "b")])
        #expect(read(bytes, splitAt: [1, 2]) == [row(1, "a", "b")])
        #expect(read([0xEF, 0xBB, 0xBF]) == [])
    }

    @Test func byteOrderMarkElsewhereIsData() {
        let bytes = Array("a\n".utf8) + [0xEF, 0xBB, 0xBF] + Array("b\n".utf8)
        #expect(read(bytes) == [row(1, "a"), row(2, "\u{FEFF}b")])
    }

    @Test func partialByteOrderMarkAtStartIsData() {
        // EF BB followed by something else is not a BOM: the bytes are kept
        // (and here form invalid UTF-8).
        #expect(read([0xEF, 0xBB, 0x61, 0x0A, 0x62]) == [error(1, "field 1 is not valid UTF-8"), row(2, "b")])
        #expect(read([0xEF, 0xBB]) == [error(1, "field 1 is not valid UTF-8")])
        #expect(read(Array("\u{FEFF}\u{FEFF}x".utf8)) == [row(1, "\u{FEFF}x")])
    }

    // MARK: - Limits

    @Test func fieldOfExactlyTheMaximumLengthIsAccepted() {
        let field = String(repeating: "a", count: CSVRowReader.maxFieldBytes)
        #expect(read("\(field),\"\(field)\"\n") == [row(1, field, field)])
    }

    @Test func overLongFieldIsAnErrorAndTheNextRowParses() {
        let field = String(repeating: "a", count: CSVRowReader.maxFieldBytes + 1)
        #expect(read("x,\(field),y\n\"\(field)\"\nz\n") == [
            error(1, "field 2 is longer than 65536 bytes"),
            error(2, "field 1 is longer than 65536 bytes"),
            row(3, "z"),
        ])
    }

    @Test func overLongFieldIsSkippedWithoutBuffering() {
        // 10 MB in one field, fed in chunks: the reader keeps reading and the
        // next record is intact.
        var reader = CSVRowReader()
        var results = reader.feed(Array("a,".utf8))
        let chunk = [UInt8](repeating: 0x62, count: 1 << 20)
        for _ in 0..<10 { results += reader.feed(chunk) }
        results += reader.feed(Array("\nc\n".utf8))
        results += reader.finish()
        #expect(results == [error(1, "field 2 is longer than 65536 bytes"), row(2, "c")])
    }

    @Test func maximumNumberOfFieldsIsAccepted() {
        let fields = (1...CSVRowReader.maxFields).map(String.init)
        #expect(read(fields.joined(separator: ",") + "\n") == [.success(CSVRow(fields: fields, line: 1))])
    }

    @Test func tooManyFieldsIsAnErrorAndTheNextRowParses() {
        let fields = Array(repeating: "x", count: CSVRowReader.maxFields + 1)
        #expect(read(fields.joined(separator: ",") + "\nok\n") == [
            error(1, "more than 1000 fields"),
            row(2, "ok"),
        ])
        // Empty fields count too.
        #expect(read(String(repeating: ",", count: CSVRowReader.maxFields)) == [error(1, "more than 1000 fields")])
    }

    // MARK: - Chunking and reuse

    @Test func everyChunkSplitGivesTheSameRowsAsOneFeed() {
        let whole = read(tricky)
        #expect(whole == trickyExpected)
        // One split at every position.
        for split in 0...tricky.count {
            #expect(read(tricky, splitAt: [split]) == whole, "split at \(split)")
        }
        // Every pair of split positions.
        for first in 0...tricky.count {
            for second in first...tricky.count where read(tricky, splitAt: [first, second]) != whole {
                Issue.record("splits at \(first) and \(second) differ")
            }
        }
        // Byte by byte.
        #expect(read(tricky, splitAt: Array(0...tricky.count)) == whole)
    }

    @Test func feedReturnsRecordsAsSoonAsTheyAreComplete() {
        var reader = CSVRowReader()
        #expect(reader.feed(Array("a,\"b".utf8)) == [])
        #expect(reader.feed(Array("\n".utf8)) == [])
        #expect(reader.feed(Array("c\"\r".utf8)) == [row(1, "a", "b\nc")])
        // The record ended at CR; a following LF belongs to the same line break.
        #expect(reader.feed(Array("\nd".utf8)) == [])
        #expect(reader.feed(Array("\r".utf8)) == [row(3, "d")])
        #expect(reader.feed(Array("\ne\n".utf8)) == [row(4, "e")])
        #expect(reader.finish() == [])
    }

    @Test func nonContiguousSequencesAreAccepted() {
        var reader = CSVRowReader()
        let bytes = Array("a,b\nc".utf8)
        #expect(reader.feed(bytes.lazy.map { $0 }) == [row(1, "a", "b")])
        #expect(reader.feed(AnySequence([UInt8(0x0A)])) == [row(2, "c")])
        #expect(reader.finish() == [])
    }

    @Test func finishResetsTheReaderForNewInput() {
        var reader = CSVRowReader()
        _ = reader.feed(Array("x\n\"open".utf8))
        #expect(reader.finish() == [error(2, "unterminated quoted field")])
        #expect(reader.feed([0xEF, 0xBB, 0xBF] + Array("y\n".utf8)) == [row(1, "y")])
        #expect(reader.finish() == [])
    }
}
