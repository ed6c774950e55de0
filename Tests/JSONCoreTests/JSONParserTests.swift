// SPDX-License-Identifier: Apache-2.0
import Testing
@testable import JSONCore

@Suite struct JSONParserTests {
    @Test(arguments: [
        #"{"a":1,"b":[true,false,null],"c":{"d":"e"}}"#,
        #"[]"#, #"{}"#, #""x""#, #"-0.5e-3"#, #"12345678901234567890123"#,
        #"{"name":"Jo\u00e3o D'\u00c1vila","emoji":"\ud83d\ude00"}"#,
    ])
    func parse_validDocuments_roundTripSemantically(text: String) throws {
        let v = try JSONParser().parse(text)
        let again = try JSONParser().parse(JSONWriter().write(v))
        #expect(v == again)
    }

    @Test func parse_objectKeepsMemberOrder() throws {
        let v = try JSONParser().parse(#"{"z":1,"a":2,"m":3}"#)
        #expect(v.objectValue?.keys == ["z", "a", "m"])
        #expect(JSONWriter().string(v) == #"{"z":1,"a":2,"m":3}"#)
    }

    @Test func parse_escapes_decoded() throws {
        let v = try JSONParser().parse(#""a\"b\\c\/d\n\t\u00e9""#)
        #expect(v.stringValue == "a\"b\\c/d\n\té")
    }

    @Test(arguments: [
        (#"{"a":}"#, JSONParseError.Kind.syntax),
        (#"{"a":1,}"#, .syntax),
        (#"[1 2]"#, .syntax),
        (#"{'a':1}"#, .syntax),
        (#"tru"#, .syntax),
        (#"01"#, .syntax),
        (#"1."#, .syntax),
        (#""abc"#, .syntax),
        (#"{"a":1} x"#, .syntax),
        (#""\x""#, .syntax),
        (#""\u12""#, .syntax),
        (#""\ud800""#, .invalidUTF8),
        (#""\udc00x""#, .invalidUTF8),
        (#""a\u0000b""#, .nulCharacter),
        ("", .syntax),
    ])
    func parse_invalidDocument_failsWithKind(text: String, kind: JSONParseError.Kind) {
        #expect(throws: JSONParseError.self) { try JSONParser().parse(text) }
        do { _ = try JSONParser().parse(text) } catch { #expect(error.kind == kind) }
    }

    @Test func parse_rawNulByte_isNulCharacter() {
        let bytes: [UInt8] = Array(#"{"a":"x"#.utf8) + [0] + Array(#""}"#.utf8)
        do { _ = try JSONParser().parse(bytes); Issue.record("accepted NUL") } catch {
            #expect(error.kind == .nulCharacter)
        }
    }

    @Test func parse_invalidUTF8_isRejected() {
        for bad: [UInt8] in [[0xC3, 0x28], [0xE2, 0x82], [0xFF], [0xED, 0xA0, 0x80]] {
            let doc = Array(#"{"a":""#.utf8) + bad + Array(#""}"#.utf8)
            do { _ = try JSONParser().parse(doc); Issue.record("accepted invalid UTF-8") } catch {
                #expect(error.kind == .invalidUTF8)
            }
        }
    }

    @Test func parse_nested10000Deep_failsFastWithTooDeep() {
        let text = String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000)
        do { _ = try JSONParser().parse(text); Issue.record("accepted deep nesting") } catch {
            #expect(error.kind == .tooDeep)
        }
    }

    @Test func parse_hugeNumberLiteral_isNumberTooLong() {
        let text = "{\"n\":" + String(repeating: "9", count: 500) + "}"
        do { _ = try JSONParser().parse(text); Issue.record("accepted huge number") } catch {
            #expect(error.kind == .numberTooLong)
        }
    }

    @Test func number_outOfRange_hasNoIntegerOrDouble() throws {
        let n = try #require(try JSONParser().parse("1e400").numberValue)
        #expect(n.double == nil)
        let big = try #require(try JSONParser().parse("99999999999999999999").numberValue)
        #expect(big.int64 == nil)
        #expect(big.double != nil)
    }

    @Test func writer_escapesControlCharacters() {
        let s = JSONWriter().string(.string("a\u{01}\"\n"))
        #expect(s == #""a\u0001\"\n""#)
    }

    @Test func caseInsensitiveLookup_findsMember() {
        let o = JSONObject(["userName": .string("x")])
        #expect(o.value(caseInsensitive: "USERNAME")?.stringValue == "x")
        #expect(asciiCaseInsensitiveEquals("urn:IETF:x", "urn:ietf:X"))
        #expect(!asciiCaseInsensitiveEquals("ab", "abc"))
    }
}

@Suite struct JSONObjectTests {
    @Test func equality_ignoresMemberOrder() throws {
        let a = try JSONParser().parse(#"{"a":1,"b":{"x":[1,2],"y":null}}"#)
        let b = try JSONParser().parse(#"{"b":{"y":null,"x":[1,2]},"a":1.0}"#)
        let c = try JSONParser().parse(#"{"b":{"y":null,"x":[2,1]},"a":1}"#)
        #expect(a == b)
        #expect(a != c)  // array order matters
    }
}
