// SPDX-License-Identifier: Apache-2.0
import Testing
@testable import HTTPServer

@Suite struct RandomBytesTests {
    @Test func decoder_randomMutationsInRandomChunks_neverCrashOrLoop() {
        var state: UInt64 = 1234
        func next() -> UInt64 { state = state &* 6364136223846793005 &+ 1442695040888963407; return state >> 33 }
        let seed = Array(
            ("POST /scim/v2/Users?filter=a%20eq%20%22b%22 HTTP/1.1\r\nHost: x\r\n"
                + "Transfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n"
                + "5;x=y\r\nhello\r\n0\r\n\r\n"
                + "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nok")
                .utf8)
        var requests = 0
        for _ in 0..<20_000 {
            var bytes = seed
            for _ in 0..<(1 + Int(next() % 5)) {
                let i = Int(next() % UInt64(bytes.count))
                if next() % 2 == 0 { bytes[i] = UInt8(next() % 256) } else { bytes.remove(at: i) }
            }
            var d = HTTPRequestDecoder(limits: HTTPLimits())
            var input = InputBuffer()
            var i = 0
            feeding: while i < bytes.count {
                let n = 1 + Int(next() % 40)
                input.append(Array(bytes[i..<min(bytes.count, i + n)]))
                i += n
                var steps = 0
                while true {
                    steps += 1
                    if steps > 1000 { Issue.record("decoder did not make progress"); return }
                    guard let e = try? d.next(&input) else { break feeding }
                    if case .needMore = e { break }
                    if case .request = e { requests += 1 }
                }
            }
        }
        #expect(requests > 1000)
    }
}
