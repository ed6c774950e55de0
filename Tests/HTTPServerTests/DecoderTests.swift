// SPDX-License-Identifier: Apache-2.0
import Testing
@testable import HTTPServer

/// The decoder on raw bytes: framing, limits and smuggling defences (RFC 9112).
@Suite struct DecoderTests {
    func decodeAll(_ text: String, limits: HTTPLimits = HTTPLimits(), split: Int? = nil) throws(HTTPDecodeError)
        -> [HTTPRequest]
    {
        var d = HTTPRequestDecoder(limits: limits)
        var input = InputBuffer()
        var out: [HTTPRequest] = []
        let bytes = Array(text.utf8)
        let step = split ?? bytes.count
        var i = 0
        while i < bytes.count {
            input.append(Array(bytes[i..<min(bytes.count, i + step)]))
            i += step
            loop: while true {
                switch try d.next(&input) {
                case .needMore: break loop
                case .sendContinue: continue
                case .request(let r): out.append(r)
                }
            }
        }
        return out
    }

    func status(_ text: String, limits: HTTPLimits = HTTPLimits()) -> Int? {
        do { _ = try decodeAll(text, limits: limits); return nil } catch { return error.status }
    }

    @Test func simpleGet_decodesPathQueryAndHeaders() throws {
        let r = try decodeAll(
            "GET /scim/v2/Users?filter=userName%20eq%20%22a%22&count=5 HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n")
        #expect(r.count == 1)
        #expect(r[0].method == "GET")
        #expect(r[0].path == "/scim/v2/Users")
        #expect(r[0].queryValue("filter") == "userName eq \"a\"")
        #expect(r[0].queryValue("count") == "5")
        #expect(r[0].headers["accept"] == "*/*")
    }

    @Test func pipelinedRequests_decodeInOrder() throws {
        let one = "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
        let two = "GET /b HTTP/1.1\r\nHost: x\r\n\r\n"
        let r = try decodeAll(one + two + one)
        #expect(r.map(\.path) == ["/a", "/b", "/a"])
        #expect(r[0].body == Array("abc".utf8))
    }

    @Test func byteByByte_sameResult() throws {
        let text =
            "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            + "3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\nTrailer: t\r\n\r\n"
            + "GET /b HTTP/1.1\r\nHost: x\r\n\r\n"
        let r = try decodeAll(text, split: 1)
        #expect(r.count == 2)
        #expect(r[0].body == Array("abcde".utf8))
        #expect(r[1].path == "/b")
    }

    @Test func expectContinue_emitsContinueBeforeBody() throws {
        var d = HTTPRequestDecoder(limits: HTTPLimits())
        var input = InputBuffer()
        input.append(Array("PUT /a HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n".utf8))
        guard case .sendContinue = try d.next(&input) else { Issue.record("no 100-continue"); return }
        guard case .needMore = try d.next(&input) else { Issue.record("expected needMore"); return }
        input.append(Array("ok".utf8))
        guard case .request(let r) = try d.next(&input) else { Issue.record("no request"); return }
        #expect(r.body == Array("ok".utf8))
    }

    @Test(arguments: [
        ("GET / HTTP/1.1\nHost: x\n\n", 400),  // bare LF
        ("GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
        ("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\na", 400),
        ("GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n", 400),  // obs-fold
        ("GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400),  // space before colon
        ("GET / HTTP/1.1\r\n\r\n", 400),  // no Host
        ("GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", 400),
        ("GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505),
        ("GET /a b HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        ("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
        ("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400),
        ("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1e3\r\n\r\n", 400),
        ("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
        ("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n", 400),
        // A sign or a prefix is no chunk size (a negative one once crashed the decoder: fuzzer).
        ("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n", 400),
        ("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n+5\r\nhello\r\n0\r\n\r\n", 400),
        ("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n", 400),
        ("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +1\r\n\r\na", 400),
        ("GET /%00 HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        ("GET /%zz HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        ("GET http://evil/ HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nHost: x\r\nExpect: something\r\nContent-Length: 1\r\n\r\n", 417),
    ])
    func badFraming_answersStatus(text: String, expected: Int) {
        #expect(status(text) == expected)
    }

    @Test func limits_requestLineHeadersCountAndBody() {
        var limits = HTTPLimits()
        limits.maxRequestLineBytes = 100
        limits.maxHeaderBytes = 1000
        limits.maxHeaderCount = 10
        limits.maxBodyBytes = 50
        #expect(status("GET /" + String(repeating: "a", count: 200) + " HTTP/1.1\r\n", limits: limits) == 414)
        #expect(
            status(
                "GET / HTTP/1.1\r\nHost: x\r\n" + String(repeating: "X-A: b\r\n", count: 11) + "\r\n", limits: limits)
                == 431)
        #expect(status("GET / HTTP/1.1\r\nHost: x\r\nX: " + String(repeating: "b", count: 2000), limits: limits) == 431)
        #expect(status("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 51\r\n\r\n", limits: limits) == 413)
        #expect(
            status(
                "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n40\r\n"
                    + String(repeating: "a", count: 64) + "\r\n0\r\n\r\n", limits: limits) == 413)
    }

    @Test func tenThousandHeaders_rejectedWith431() {
        let text = "GET / HTTP/1.1\r\nHost: x\r\n" + String(repeating: "A: b\r\n", count: 10_000) + "\r\n"
        #expect(status(text) == 431)
    }

    @Test func keepAlive_followsVersionAndConnectionHeader() throws {
        #expect(try decodeAll("GET / HTTP/1.1\r\nHost: x\r\n\r\n")[0].wantsKeepAlive)
        #expect(try !decodeAll("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")[0].wantsKeepAlive)
        #expect(try !decodeAll("GET / HTTP/1.0\r\n\r\n")[0].wantsKeepAlive)
        #expect(try decodeAll("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")[0].wantsKeepAlive)
    }
}
