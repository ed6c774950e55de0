// SPDX-License-Identifier: Apache-2.0
import Testing
import JSONCore
@testable import SCIM

/// Deterministic random inputs: parsers must answer with a value or an error, never crash or hang.
@Suite struct RandomInputTests {
    struct SplitMix: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    /// Mutations of valid inputs reach deeper than uniform noise.
    func mutate(_ seed: [UInt8], _ rng: inout SplitMix) -> [UInt8] {
        var b = seed
        for _ in 0..<Int.random(in: 1...6, using: &rng) {
            guard !b.isEmpty else { break }
            let i = Int.random(in: 0..<b.count, using: &rng)
            switch Int.random(in: 0..<4, using: &rng) {
            case 0: b[i] = UInt8.random(in: 0...255, using: &rng)
            case 1: b.remove(at: i)
            case 2: b.insert(b[Int.random(in: 0..<b.count, using: &rng)], at: i)
            default: b.insert(contentsOf: b[i..<min(b.count, i + 8)], at: i)
            }
        }
        return b
    }

    @Test func jsonAndNormalizer_randomMutations_neverCrash() {
        var rng = SplitMix(state: 42)
        let seed = Array(
            (#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"a\u00e9","name":"#
                + #"{"givenName":"x"},"emails":[{"value":"a@b","primary":true}],"active":"True","n":-1.5e3}"#)
                .utf8)
        var parsed = 0
        for _ in 0..<20_000 {
            let input = mutate(seed, &rng)
            if let v = try? JSONParser().parse(input) {
                parsed += 1
                if let o = v.objectValue { _ = try? ResourceNormalizer(type: userType).normalize(o) }
                _ = JSONWriter().write(v)
            }
        }
        #expect(parsed > 100)  // the mutations still exercise the normaliser
    }

    @Test func filters_randomMutations_neverCrash() {
        var rng = SplitMix(state: 7)
        let seed = Array(
            (#"emails[type eq "work" and not (value co "x")].value sw "a" or "#
                + #"(meta.lastModified gt "2020-01-01T00:00:00Z" and active eq true)"#)
                .utf8)
        var accepted = 0
        for _ in 0..<20_000 {
            let text = String(decoding: mutate(seed, &rng), as: UTF8.self)
            if let f = try? SCIMFilter.parse(text, for: userType) {
                accepted += 1
                _ = f.matches(nurse)
            }
        }
        #expect(accepted > 50)
    }

    @Test func patchPaths_randomMutations_neverCrash() {
        var rng = SplitMix(state: 99)
        let seed = Array(#"emails[type eq "work"].value"#.utf8)
        var stored = nurse
        stored["id"] = nil
        var applied = 0
        var otherThan400 = 0
        for _ in 0..<20_000 {
            let path = String(decoding: mutate(seed, &rng), as: UTF8.self)
            let req = PatchRequest(operations: [PatchOperation(op: .replace, path: path, value: .string("x@y.org"))])
            do {
                _ = try req.apply(to: stored, type: userType)
                applied += 1
            } catch {
                if error.status != 400 { otherThan400 += 1 }
            }
        }
        #expect(applied > 50)
        #expect(otherThan400 == 0)
    }
}
